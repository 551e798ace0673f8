// Small progressive enhancements; all behaviour also works without JS
// except live updates. No inline scripts so the CSP can forbid them.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const value = button.getAttribute("data-copy");
  navigator.clipboard.writeText(value).then(() => {
    const label = button.textContent;
    button.textContent = "Copied!";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});
// htmx: show server error fragments inline instead of silently ignoring them.
document.addEventListener("htmx:beforeSwap", (event) => {
  const status = event.detail.xhr.status;
  if (status >= 400 && status < 500) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
// Notifications socket (htmx ws extension on <body>): on every (re)connect,
// ask for what arrived after the newest notification this page has seen
// (#notification-cursor, moved by each push: data-seq, the user's sequence
// in commit order, sent as since_seq; data-since, the id, only when the page
// has no seq), and say whether this page shows the live list
// (#notification-list, with its category filter) or a coop's members table
// (#coop-refresh). A row can arrive twice (the page showed it and the catch-up
// sends it again): the copy just prepended is dropped, by element id.
(function () {
  if (!window.htmx || !htmx.createWebSocket) return;
  let sinceSeq = -1;
  let since = 0;
  const noteCursor = () => {
    const cursor = document.getElementById("notification-cursor");
    if (!cursor) return;
    const seq = parseInt(cursor.dataset.seq || "", 10);
    if (!Number.isNaN(seq) && seq > sinceSeq) sinceSeq = seq;
    const id = parseInt(cursor.dataset.since || "0", 10);
    if (id > since) since = id;
  };
  const dropCopies = () => {
    document.querySelectorAll("#bell-list > li.new, #notification-list > li.new").forEach((item) => {
      if (item.id && document.querySelectorAll(`[id="${item.id}"]`).length > 1) item.remove();
    });
  };
  document.addEventListener("htmx:wsAfterMessage", () => { noteCursor(); dropCopies(); });
  const create = htmx.createWebSocket;
  htmx.createWebSocket = (url) => {
    noteCursor();
    const target = new URL(url, window.location.href);
    if (target.pathname === "/ws") {
      if (sinceSeq >= 0) target.searchParams.set("since_seq", String(sinceSeq));
      else target.searchParams.set("since", String(since));
      const list = document.getElementById("notification-list");
      if (list) {
        target.searchParams.set("list", "1");
        if (list.dataset.category) target.searchParams.set("category", list.dataset.category);
      }
      // A coop page (dashboard or admin screen): the socket pushes #coop-refresh
      // when the membership changes.
      const refresh = document.getElementById("coop-refresh");
      if (refresh && refresh.dataset.coop) target.searchParams.set("coop", refresh.dataset.coop);
      // The chat page: the socket pushes this conversation's fragments (chat.js).
      // The /messages page: the socket pushes friends/_messages_refresh.html.
      if (document.getElementById("conversation-list")) target.searchParams.set("messages", "1");
      const chat = document.getElementById("chat");
      if (chat && chat.dataset.conversationId) target.searchParams.set("chat", chat.dataset.conversationId);
    }
    return create(target.toString());
  };
})();
// ---- The phone menu, the account menu and the bell: open/close by keyboard, Escape and outside clicks ----
// The menu button (base.html) shows and hides #site-menu on a phone (CSS reads
// aria-expanded); from 1024 px the button is hidden and the menu is a row whose
// account links (#account-menu) open under .account-button the same way.
// Escape closes the innermost open one and gives the focus back to its button.
(function () {
  const menuButton = () => document.querySelector(".menu-button");
  const accountButton = () => document.querySelector(".account-button");
  const bell = () => document.getElementById("notification-bell");
  const setExpanded = (button, open, focusButton) => {
    if (!button) return;
    button.setAttribute("aria-expanded", open ? "true" : "false");
    if (focusButton) button.focus();
  };
  const setMenu = (open, focusButton) => setExpanded(menuButton(), open, focusButton);
  const setAccount = (open, focusButton) => setExpanded(accountButton(), open, focusButton);
  const isOpen = (button) => !!button && button.getAttribute("aria-expanded") === "true";
  const closeBell = (focusSummary) => {
    const details = bell();
    if (!details || !details.open) return;
    details.open = false;
    if (focusSummary) details.querySelector("summary").focus();
  };
  document.addEventListener("click", (event) => {
    const button = event.target.closest(".menu-button");
    if (button) {
      setMenu(!isOpen(button), false);
      closeBell(false);
      return;
    }
    const account = event.target.closest(".account-button");
    if (account) {
      setAccount(!isOpen(account), false);
      closeBell(false);
      return;
    }
    const menu = document.getElementById("site-menu");
    if (menu && !menu.contains(event.target)) setMenu(false, false);
    const accountBox = document.querySelector(".account");
    if (accountBox && !accountBox.contains(event.target)) setAccount(false, false);
    const details = bell();
    if (details && details.open) {
      if (!details.contains(event.target)) closeBell(false);
      else if (event.target.closest(".bell-panel a")) details.open = false;  // the link opens the item
    }
    if (details && event.target.closest("#notification-bell > summary")) setMenu(false, false);
  });
  // Tabbing out of the open account menu closes it: it never hangs over the page unattended.
  document.addEventListener("focusout", (event) => {
    const accountBox = document.querySelector(".account");
    if (!accountBox || !accountBox.contains(event.target) || !isOpen(accountButton())) return;
    if (event.relatedTarget && !accountBox.contains(event.relatedTarget)) setAccount(false, false);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const details = bell();
    if (details && details.open) { closeBell(true); return; }
    if (isOpen(accountButton())) { setAccount(false, true); return; }
    if (isOpen(menuButton())) setMenu(false, true);
  });
})();

// ---- Stacked tables on a phone: every cell gets its column's header as data-label ----
// (app.css shows it before the value under 768 px). A template's own
// data-label wins; data-label="" shows none.
function labelTableCells(root) {
  (root || document).querySelectorAll("table").forEach((table) => {
    const heads = Array.from(table.querySelectorAll(":scope > thead > tr > th")).map((th) => th.textContent.trim());
    if (!heads.length) return;
    table.querySelectorAll(":scope > tbody > tr").forEach((row) => {
      let column = 0;
      Array.from(row.children).forEach((cell) => {
        if (!cell.hasAttribute("data-label") && heads[column] !== undefined) cell.setAttribute("data-label", heads[column]);
        column += cell.colSpan || 1;
      });
    });
  });
}
document.addEventListener("DOMContentLoaded", () => labelTableCells());
document.addEventListener("htmx:afterSettle", () => labelTableCells());
document.addEventListener("htmx:oobAfterSwap", () => labelTableCells());
document.addEventListener("htmx:wsAfterMessage", () => labelTableCells());

// ---- A push swapped the nav's friend-request badge: pages that list the
// requests (friends/index.html) listen for friend-requests-changed.
document.addEventListener("htmx:oobAfterSwap", (event) => {
  if (event.detail.target && event.detail.target.id === "friend-requests-badge" && window.htmx) {
    window.htmx.trigger(document.body, "friend-requests-changed");
  }
});

// ---- The profile editor's refusal (#profile-form-error, swapped out of band
// by each htmx save) names the refused control in data-field: mark that one
// invalid and described by the refusal, and unmark the others, as a page
// render of the refusal does (settings/profile.html).
document.addEventListener("htmx:oobAfterSwap", () => {
  const error = document.getElementById("profile-form-error");
  const form = error && error.closest("form");
  if (!form) return;
  const field = error.hidden ? "" : error.getAttribute("data-field") || "";
  for (const control of form.elements) {
    if (field && control.name === field) {
      control.setAttribute("aria-invalid", "true");
      control.setAttribute("aria-describedby", "profile-form-error");
    } else if (control.getAttribute("aria-describedby") === "profile-form-error") {
      control.removeAttribute("aria-invalid");
      control.removeAttribute("aria-describedby");
    }
  }
});

// ---- A report resolved as "Ban" (moderation/_report_list.html) asks first,
// as the member row's Ban button does (hx-confirm there); other outcomes go
// out at once. htmx fires htmx:confirm before every request it issues.
document.addEventListener("htmx:confirm", (event) => {
  const form = event.detail.elt && event.detail.elt.closest ? event.detail.elt.closest("form.mod-resolve") : null;
  const outcome = form && form.querySelector("select[name=action]");
  if (!outcome || outcome.value !== "ban" || !form.dataset.banConfirm) return;
  event.preventDefault();
  if (window.confirm(form.dataset.banConfirm)) event.detail.issueRequest(true);
});

// ---- Escape closes a small disclosure the focus is in (a chat message's
// React picker or Report form, a moderation row's Actions) and gives the
// focus to its summary.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.defaultPrevented) return;
  const focused = document.activeElement;
  const details = focused && focused.closest
    ? focused.closest("details.react-picker[open], details.report-picker[open], details.mod-actions[open]") : null;
  if (!details) return;
  event.preventDefault();
  event.stopPropagation();
  details.open = false;
  details.querySelector("summary").focus();
}, true);

// ---- A page opened at a section made focusable for it (tabindex="-1", e.g.
// /friends#friends-list after Accept): the focus starts there, not at the top.
document.addEventListener("DOMContentLoaded", () => {
  const target = window.location.hash && document.getElementById(decodeURIComponent(window.location.hash.slice(1)));
  if (target && target.getAttribute("tabindex") === "-1") target.focus();
});

// ---- Live notifications are read out: #live-announcer (aria-live) gets the title ----
document.addEventListener("DOMContentLoaded", () => {
  const list = document.getElementById("bell-list");
  const announcer = document.getElementById("live-announcer");
  if (!list || !announcer || !window.MutationObserver) return;
  new MutationObserver((records) => {
    const titles = [];
    records.forEach((record) => record.addedNodes.forEach((node) => {
      if (node.nodeType === 1 && node.matches("li.new") && node.isConnected) {
        const link = node.querySelector("a");
        titles.push((link || node).textContent.trim());
      }
    }));
    if (titles.length) announcer.textContent = `New notification: ${titles.join("; ")}`;
  }).observe(list, { childList: true });
});

// ---- Focus after Mark read / Delete on /notifications ----
// The item is swapped (mark read) or removed (delete), here by the request or
// by the socket's sync push (notifications/_sync.html), which would drop the
// focus to <body>: keep it on the same item (the control with the same
// label, else its first action), or move it to the neighbouring item (the
// next, else the previous), else the page's heading.
(function () {
  const focusable = (item) => item && item.querySelector(".notification-actions a, .notification-actions button, button, a");
  const remember = (el) => {
    const item = el && el.closest && el.closest("li.notification");
    if (!item) return null;
    const sibling = (dir) => { let s = item[dir]; while (s && !s.matches("li.notification")) s = s[dir]; return s && s.id; };
    return { elt: el, id: item.id, next: sibling("nextElementSibling"), prev: sibling("previousElementSibling"),
             label: (el.textContent || "").trim() };
  };
  const restore = (memo) => {  // memo: what remember() saw
    const active = document.activeElement;
    if (active && active !== document.body && active.isConnected) return;  // focus survived, or moved on
    const same = document.getElementById(memo.id);
    const byId = (id) => id && document.getElementById(id);
    const target = (same && (Array.from(same.querySelectorAll("a, button")).find((e) => e.textContent.trim() === memo.label)
                             || focusable(same)))
      || focusable(byId(memo.next)) || focusable(byId(memo.prev)) || document.querySelector("main h1");
    if (!target) return;
    if (target.matches("h1")) target.setAttribute("tabindex", "-1");
    target.focus();
  };
  // Whatever swaps the item (the request's answer, a socket push), the list
  // mutates: if the focused control went with it, put the focus back.
  let memo = null;  // the last focused control of an item
  document.addEventListener("focusin", (event) => { memo = remember(event.target) || memo; });
  document.addEventListener("DOMContentLoaded", () => {
    const feed = document.getElementById("notification-feed");
    if (!feed || !window.MutationObserver) return;
    new MutationObserver(() => {
      if (memo && !memo.elt.isConnected) restore(memo);
    }).observe(feed, { childList: true, subtree: true });
  });
})();

// Pushed fragments marked data-if-present (notifications/_sync.html: an item
// read or deleted in another tab) are swapped only where this page shows that
// element; the others are dropped before htmx looks for their targets. The
// extension is named on <html>, the socket element's ancestor, so every page
// has it without a template change.
(function () {
  if (!window.htmx || !htmx.defineExtension) return;
  htmx.defineExtension("present-only", {
    transformResponse: (text) => {
      if (text.indexOf("data-if-present") < 0) return text;
      const holder = document.createElement("template");
      holder.innerHTML = text;
      holder.content.querySelectorAll("[data-if-present]").forEach((element) => {
        if (!element.id || !document.getElementById(element.id)) element.remove();
      });
      return holder.innerHTML;
    },
  });
  const root = document.documentElement;
  const named = (root.getAttribute("hx-ext") || "").split(",").map((s) => s.trim()).filter(Boolean);
  if (!named.includes("present-only")) root.setAttribute("hx-ext", named.concat("present-only").join(","));
})();

// A part that re-reads itself on a timer (data-refresh-while-visible) skips
// the rounds while its tab is hidden: no requests from a tab nobody sees.
// (htmx trigger filters would need eval, which the CSP forbids.)
document.addEventListener("htmx:beforeRequest", (event) => {
  if (document.hidden && event.detail.elt.hasAttribute("data-refresh-while-visible")) event.preventDefault();
});

// ---- /messages: the list of conversations, kept live ----
// The socket (messages=1) pushes #messages-refresh, which fetches
// /messages/live: the list comes back out of band. After a reconnect the
// list is fetched once (pushes may have been missed meanwhile). The focus
// stays on the same conversation's link when the list is re-rendered.
(function () {
  let opened = false;
  let focused = null;  // the data-conversation-link of the focused link
  document.addEventListener("htmx:wsOpen", () => {
    const list = document.getElementById("conversation-list");
    if (list && opened && window.htmx) htmx.ajax("GET", "/messages/live", { swap: "none", source: list });
    opened = true;
  });
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const target = event.detail.target;
    if (!target || target.id !== "conversation-list") return;
    const active = document.activeElement;
    focused = active && target.contains(active) && active.dataset ? active.dataset.conversationLink || null : null;
  });
  document.addEventListener("htmx:oobAfterSwap", () => {
    if (!focused) return;
    const link = document.querySelector(`[data-conversation-link="${focused}"]`);
    focused = null;
    if (link && (document.activeElement === document.body || !document.activeElement)) link.focus({ preventScroll: true });
  });
})();
