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
// ask for what arrived since the newest notification this page has seen
// (#notification-cursor, moved by each push), and say whether this page shows
// the live list (#notification-list, with its category filter) or a coop's
// members table (#coop-refresh).
(function () {
  if (!window.htmx || !htmx.createWebSocket) return;
  let since = 0;
  const noteCursor = () => {
    const cursor = document.getElementById("notification-cursor");
    const value = cursor ? parseInt(cursor.dataset.since || "0", 10) : 0;
    if (value > since) since = value;
  };
  document.addEventListener("htmx:wsAfterMessage", noteCursor);
  const create = htmx.createWebSocket;
  htmx.createWebSocket = (url) => {
    noteCursor();
    const target = new URL(url, window.location.href);
    if (target.pathname === "/ws") {
      target.searchParams.set("since", String(since));
      const list = document.getElementById("notification-list");
      if (list) {
        target.searchParams.set("list", "1");
        if (list.dataset.category) target.searchParams.set("category", list.dataset.category);
      }
      // A coop page (dashboard or admin screen): the socket pushes #coop-refresh
      // when the membership changes.
      const refresh = document.getElementById("coop-refresh");
      if (refresh && refresh.dataset.coop) target.searchParams.set("coop", refresh.dataset.coop);
    }
    return create(target.toString());
  };
})();
