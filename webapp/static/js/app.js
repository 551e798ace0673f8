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
      const chat = document.getElementById("chat");
      if (chat && chat.dataset.conversationId) target.searchParams.set("chat", chat.dataset.conversationId);
    }
    return create(target.toString());
  };
})();
