// The coop chat page (templates/chat/page.html). The page's socket is the
// one htmx opens on <body> (/ws?format=html&chat=<id>, app.js adds chat=);
// its fragments (messages, edits, presence) are swapped by htmx out of band.
// This script: resumes by seq on every (re)connect, sends over the socket
// (Enter sends, Shift+Enter is a newline), typing (throttled) and read
// positions, turns #chat-signal pushes (typing, read) into the typing line
// and "Seen by", calls the JSON routes for reactions and deletes, keeps
// the scroll where the reader is, and puts a message the server refused
// (muted, slow mode, a blocked phrase) back in the composer. Only
// textContent is written: names and bodies never become markup here.
// Editing is inline: htmx swaps a message for its edit form (chat/_edit.html)
// and back; this script gives the form its keys (Enter saves, Shift+Enter is
// a new line, Escape cancels), keeps live pushes off a message being edited,
// and keeps the focus on a message that a push re-renders.
(function () {
  const chat = document.getElementById("chat");
  if (!chat) return;
  const cid = parseInt(chat.dataset.conversationId, 10);
  const me = chat.dataset.me;
  const log = document.getElementById("chat-log");
  const scroller = document.getElementById("chat-scroll");
  const form = document.getElementById("chat-composer");
  const input = document.getElementById("chat-body");
  const typingLine = document.getElementById("chat-typing");
  const seenLine = document.getElementById("chat-seen");
  const announcer = document.getElementById("chat-announcer");
  const replying = document.getElementById("chat-replying");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  let socket = null;
  let saidAway = false; // this socket told the server it is away (presence is per socket)
  let replyTo = null;
  let lastTypingSent = 0;
  let readSent = parseInt(chat.dataset.lastReadSeq || "0", 10);
  const typers = new Map(); // user id -> timer
  const reads = new Map(); // user id -> last read seq

  const members = () => document.querySelectorAll("#chat-members > li[data-user-id]");
  const nameOf = (userId) => {
    for (const li of members()) if (li.dataset.userId === userId) return li.dataset.name;
    return "Someone";
  };
  members().forEach((li) => reads.set(li.dataset.userId, parseInt(li.dataset.readSeq || "0", 10)));

  const lastSeq = () => {
    let seq = 0;
    log.querySelectorAll("li.msg[data-seq]").forEach((li) => {
      seq = Math.max(seq, parseInt(li.dataset.seq, 10));
    });
    return seq;
  };
  const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  const toBottom = () => { scroller.scrollTop = scroller.scrollHeight; };
  const send = (message) => {
    if (!socket) return false;
    socket.send(JSON.stringify(message));
    return true;
  };
  const api = (method, path, body) => fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    body: body ? JSON.stringify(body) : undefined,
  }).then((resp) => resp.json().then((data) => {
    if (!resp.ok) showError(data.error ? data.error.message : "That did not work.");
    return { ok: resp.ok, data };
  }));
  const showError = (text) => {
    const el = document.getElementById("chat-error");
    el.textContent = text;
    el.hidden = false;
    setTimeout(() => { el.hidden = true; }, 6000);
  };
  const hideError = () => {
    const el = document.getElementById("chat-error");
    el.hidden = true;
    el.textContent = "";
  };
  // The message last sent, until it shows in the log: a refusal (muted,
  // slow mode, a blocked phrase) puts it back in an empty composer.
  let draft = null;
  let errorShown = document.getElementById("chat-error");
  const restoreDraft = () => {
    if (draft && !input.value) {
      input.value = draft.body;
      setReply(draft.replyTo);
      input.focus();
    }
    draft = null;
  };
  // A moderator's mute (or its end) while the page is open: the same notice
  // above the composer as a page loaded during a mute (chat/_log.html).
  const showMuted = (until) => {
    let note = document.getElementById("chat-muted");
    if (!until) {
      if (note) note.remove();
      return;
    }
    if (!note) {
      note = document.createElement("p");
      note.id = "chat-muted";
      note.className = "flash";
      note.setAttribute("role", "status");
      form.before(note);
    }
    const end = new Date(until);
    const shown = window.SoloTime && !Number.isNaN(end.getTime()) ? window.SoloTime.format(end, "datetime") : until;
    note.textContent = `A moderator muted you until ${shown}: you can read, not send.`;
  };
  const clientId = () => (window.crypto && crypto.randomUUID
    ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`);

  const markRead = () => {
    const seq = lastSeq();
    if (seq > readSent && document.visibilityState === "visible" && send({ type: "read", conversation_id: cid, seq })) {
      readSent = seq;
    }
  };

  // Live regions are written only when their words change: a rewrite with
  // the same words would be read out again.
  const say = (element, text) => { if (element && element.textContent !== text) element.textContent = text; };
  const renderTyping = () => {
    const names = [...typers.keys()].map(nameOf);
    say(typingLine, names.length === 0 ? ""
      : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`);
  };
  const renderSeen = () => {
    const seq = lastSeq();
    const mineLast = [...log.querySelectorAll("li.msg.mine[data-seq]")].pop();
    if (!mineLast || parseInt(mineLast.dataset.seq, 10) !== seq) { say(seenLine, ""); return; }
    const names = [...reads.entries()].filter(([u, s]) => u !== me && s >= seq).map(([u]) => nameOf(u));
    say(seenLine, names.length ? `Seen by ${names.join(", ")}` : "");
  };
  // New messages from others are read out here, author and words only (the
  // log itself is not a live region: an edit or a reaction re-renders a
  // whole message, which would be read again with its buttons). A burst
  // (a catch-up after a reconnect) is counted instead.
  const announceNew = (afterSeq) => {
    const fresh = [...log.querySelectorAll("li.msg[data-seq]")].filter((li) =>
      parseInt(li.dataset.seq, 10) > afterSeq && li.dataset.sender !== me);
    if (!fresh.length || !announcer) return;
    if (fresh.length > 3) { announcer.textContent = `${fresh.length} new messages`; return; }
    announcer.textContent = fresh.map((li) => {
      if (li.classList.contains("hidden-for-viewer")) return "A message from a miner you blocked";
      const author = li.querySelector(".msg-author");
      const body = li.querySelector(".msg-body");
      return `${author ? author.textContent : "Someone"}: ${body ? body.textContent.trim().slice(0, 280) : ""}`;
    }).join(". ");
  };

  // The socket htmx opened: resume after the newest message on the page.
  // A new socket counts as present; one opened in a hidden tab says away.
  document.body.addEventListener("htmx:wsOpen", (event) => {
    socket = event.detail.socketWrapper;
    saidAway = false;
    send({ type: "resume", conversations: { [cid]: lastSeq() } });
    if (document.visibilityState === "hidden" && send({ type: "presence", status: "away" })) saidAway = true;
  });
  document.body.addEventListener("htmx:wsClose", () => { socket = null; });

  let stick = true;
  let seqBefore = 0;
  // The focused control of a message a push may replace: {id, selectors},
  // the control first, then what stands in for it once it is gone (a
  // reaction whose count fell to 0: the React picker; a deleted message:
  // the message itself).
  let refocus = null;
  const focusSelectors = (control) => {
    if (!control || !control.dataset) return [];
    if (control.dataset.action) return [`[data-action="${control.dataset.action}"]`];
    if (control.dataset.react && control.closest(".msg-reactions")) {
      return [`.msg-reactions [data-react="${control.dataset.react}"]`, "details.react-picker > summary"];
    }
    if (control.matches("details.react-picker > summary")) return ["details.react-picker > summary"];
    return [];
  };
  document.body.addEventListener("htmx:wsBeforeMessage", () => {
    stick = nearBottom();
    seqBefore = lastSeq();
    const focused = document.activeElement;
    const li = focused && focused.closest ? focused.closest("li.msg[id]") : null;
    refocus = li ? { id: li.id, selectors: focusSelectors(focused) } : null;
  });
  // A message being edited keeps its form: a push about it (a reaction, the
  // edit's own echo) waits; Save or Cancel brings the current message back.
  // So does a message whose report form is open (its words would be lost);
  // the next push after it brings the message up to date.
  document.body.addEventListener("htmx:oobBeforeSwap", (event) => {
    const target = event.detail.target;
    if (target && target.matches && (target.matches("li.msg.editing")
        || target.querySelector("details.report-picker[open] form.msg-report"))) event.preventDefault();
  });
  document.body.addEventListener("htmx:wsAfterMessage", () => {
    nameReplies();
    if (refocus && (!document.activeElement || document.activeElement === document.body)) {
      const li = document.getElementById(refocus.id);
      const control = li && refocus.selectors.map((selector) => li.querySelector(selector)).find(Boolean);
      if (control) {
        control.focus({ preventScroll: true });
      } else if (li) {
        li.tabIndex = -1; // e.g. deleted: its "Message deleted" is what there is to read
        li.focus({ preventScroll: true });
      }
    }
    refocus = null;
    // A message sent twice (page render and catch-up) keeps its first copy.
    log.querySelectorAll("li.msg[id]").forEach((li) => {
      const copies = document.querySelectorAll(`[id="${li.id}"]`);
      if (copies.length > 1) copies[copies.length - 1].remove();
    });
    // The server refused what was sent (a new #chat-error was swapped in).
    const error = document.getElementById("chat-error");
    if (error !== errorShown) {
      errorShown = error;
      if (!error.hidden) restoreDraft();
    }
    const empty = log.querySelector(".chat-empty");
    if (empty && log.querySelector("li.msg")) empty.remove();
    const signal = document.getElementById("chat-signal");
    if (signal && signal.dataset.kind) {
      const kind = signal.dataset.kind;
      const userId = signal.dataset.userId;
      if (kind === "typing" && userId && userId !== me) {
        clearTimeout(typers.get(userId));
        typers.set(userId, setTimeout(() => { typers.delete(userId); renderTyping(); },
          1000 * parseInt(signal.dataset.expiresIn || "6", 10)));
        renderTyping();
      } else if (kind === "read" && userId) {
        reads.set(userId, Math.max(reads.get(userId) || 0, parseInt(signal.dataset.seq || "0", 10)));
      } else if (kind === "conversation" && ["removed", "left", "archived"].includes(signal.dataset.event)) {
        showError("You are no longer a member of this chat.");
        form.querySelectorAll("textarea, button").forEach((el) => { el.disabled = true; });
      } else if (kind === "conversation" && signal.dataset.event === "read_only") {
        // A block or an unfriend: the history stays, the composer goes.
        const note = document.getElementById("chat-read-only");
        if (note) {
          note.textContent = "This conversation is read-only: you are no longer friends.";
          note.hidden = false;
        }
        form.querySelectorAll("textarea, button").forEach((el) => { el.disabled = true; });
        form.hidden = true;
        typers.clear();
        renderTyping();
      } else if (kind === "conversation" && ["muted", "unmuted"].includes(signal.dataset.event)) {
        showMuted(signal.dataset.event === "muted" ? signal.dataset.mutedUntil : "");
      } else if (kind === "conversation" && signal.dataset.event === "writable") {
        // Friends again: the composer comes back.
        const note = document.getElementById("chat-read-only");
        if (note) { note.hidden = true; note.textContent = ""; }
        form.querySelectorAll("textarea, button").forEach((el) => { el.disabled = false; });
        form.hidden = false;
      }
      signal.dataset.kind = "";
    }
    // Whoever just posted stops typing.
    const newest = [...log.querySelectorAll("li.msg")].pop();
    if (draft && newest && newest.dataset.sender === me && parseInt(newest.dataset.seq || "0", 10) > draft.after) {
      draft = null; // it went through: an earlier refusal no longer applies
      hideError();
    }
    if (newest && newest.dataset.sender && typers.has(newest.dataset.sender)) {
      clearTimeout(typers.get(newest.dataset.sender));
      typers.delete(newest.dataset.sender);
      renderTyping();
    }
    if (stick) toBottom();
    renderSeen();
    markReported();
    announceNew(seqBefore);
    markRead();
  });

  // Older messages loaded above: keep the reader's place.
  let heightBefore = 0;
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "chat-older") heightBefore = scroller.scrollHeight;
  });
  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (heightBefore && event.detail.target && event.detail.target.id === "chat-older") {
      scroller.scrollTop += scroller.scrollHeight - heightBefore;
      heightBefore = 0;
    }
  });

  // The composer.
  const submit = () => {
    const body = input.value;
    if (!body.trim()) return;
    const message = { type: "send", conversation_id: cid, body, client_id: clientId() };
    if (replyTo) message.reply_to = replyTo;
    hideError();
    draft = { body, replyTo, after: lastSeq() };
    if (!send(message)) {
      api("POST", `/api/conversations/${cid}/messages`, { body, client_id: message.client_id, reply_to: replyTo || undefined })
        .then((result) => { if (result.ok) draft = null; else restoreDraft(); });
    }
    input.value = "";
    setReply(null);
    stick = true;
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); submit(); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape" && replyTo) {
      event.preventDefault();
      setReply(null); // the text stays; only the reply goes
    }
  });
  input.addEventListener("input", () => {
    const now = Date.now();
    if (input.value && now - lastTypingSent > 3000 && send({ type: "typing", conversation_id: cid })) {
      lastTypingSent = now;
    }
  });

  // "↩ in reply to <name>" once the message replied to is on the page: the
  // server's fragment says "a message" (a pushed one knows no other name).
  // A hidden message's author stays hidden.
  const nameReplies = () => {
    log.querySelectorAll("a.msg-reply:not([data-named])").forEach((link) => {
      const parent = document.getElementById(link.getAttribute("href").slice(1));
      const author = parent && parent.querySelector(".msg-author");
      if (!author) return;
      link.dataset.named = "1";
      link.textContent = parent.classList.contains("hidden-for-viewer")
        ? "↩ in reply to a hidden message" : `↩ in reply to ${author.textContent}`;
    });
  };

  const setReply = (id) => {
    replyTo = id || null;
    replying.hidden = !id;
    if (id) {
      const author = document.querySelector(`#msg-${id} .msg-author`);
      replying.querySelector("span").textContent = `Replying to ${author ? author.textContent : "a message"}`;
      input.focus();
    }
  };

  // Message actions: reply, react, edit, delete.
  log.addEventListener("click", (event) => {
    const li = event.target.closest("li.msg");
    if (!li) return;
    const id = parseInt(li.dataset.id, 10); // reply_to is a number (API.md)
    const react = event.target.closest("[data-react]");
    if (react) {
      const emoji = react.dataset.react;
      const mine = react.classList.contains("me");
      api(mine ? "DELETE" : "PUT", `/api/messages/${id}/reactions/${encodeURIComponent(emoji)}`);
      const picker = react.closest("details");
      if (picker) {
        picker.querySelector("summary").focus(); // not lost with the closing picker
        picker.open = false;
      }
      return;
    }
    const action = event.target.closest("[data-action]");
    if (!action) return;
    if (action.dataset.action === "reply") setReply(id);
    if (action.dataset.action === "delete" && window.confirm("Delete this message?")) {
      api("DELETE", `/api/messages/${id}`);
    }
  });
  // A message reported from this page keeps saying so when a push
  // re-renders it (a reaction, an edit): its Report control becomes
  // "Reported" (the page's memory only; after a reload, reporting it again
  // says the earlier report stands).
  const reported = new Set();
  document.body.addEventListener("htmx:load", (event) => {
    const status = event.detail.elt;
    if (!status.matches || !status.matches(".msg-report-status:not(.error)")) return;
    const li = status.closest("li.msg[id]");
    if (li) reported.add(li.id);
  });
  const markReported = () => {
    reported.forEach((id) => {
      const picker = document.querySelector(`#${id} details.report-picker:not([open])`);
      if (!picker) return;
      const note = document.createElement("span");
      note.className = "msg-reported muted";
      note.textContent = "Reported";
      picker.replaceWith(note);
    });
  };
  // An opened React picker or Report form near the bottom of the log is
  // scrolled into view (toggle does not bubble: caught on the way down).
  log.addEventListener("toggle", (event) => {
    const details = event.target;
    if (details.open && details.matches && details.matches("details.react-picker, details.report-picker")) {
      details.scrollIntoView({ block: "nearest" });
    }
  }, true);
  // The inline edit form: Enter saves, Shift+Enter is a new line, Escape
  // cancels (htmx answers with the message, its Edit button focused).
  log.addEventListener("keydown", (event) => {
    const field = event.target.closest("form.msg-edit textarea");
    if (!field) return;
    const editForm = field.form;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (field.value.trim()) editForm.requestSubmit();
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation(); // not the page's own Escape (menus)
      editForm.querySelector("[data-action=cancel-edit]").click();
    }
  });
  // The form arrived (autofocus put the focus in it): the caret after the
  // text, once per form, never while someone types.
  document.body.addEventListener("htmx:afterSettle", () => {
    nameReplies(); // older messages came in: some may be replied to
    const field = document.activeElement;
    if (field && field.matches && field.matches("form.msg-edit textarea") && !field.dataset.caretSet) {
      field.dataset.caretSet = "1";
      field.setSelectionRange(field.value.length, field.value.length);
    }
  });
  replying.addEventListener("click", (event) => {
    if (event.target.closest("[data-action=cancel-reply]")) setReply(null);
  });

  // Presence: this socket is away while the tab is hidden, and back when
  // the tab is (only then "online", which also ends a do-not-disturb the
  // miner chose). Leaving the page (pagehide comes before its
  // visibilitychange) says nothing: the socket closes, and the next page's
  // keeps the miner online without an "away" in between.
  let leaving = false;
  window.addEventListener("pagehide", () => { leaving = true; });
  window.addEventListener("pageshow", () => { leaving = false; });
  document.addEventListener("visibilitychange", () => {
    if (leaving) return;
    if (document.visibilityState === "hidden") {
      if (send({ type: "presence", status: "away" })) saidAway = true;
    } else if (saidAway && send({ type: "presence", status: "online" })) {
      saidAway = false;
    }
    markRead();
  });

  nameReplies();
  toBottom();
  renderSeen();
})();
