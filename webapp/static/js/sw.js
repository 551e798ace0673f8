// Service worker for Web Push (served as /sw.js). The payload is
// {id, title, body, url, category, tag} (services/webpush.py); the tag is the
// notification's group, so a new one of a group replaces the previous one.
self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = { title: "Solo Mining" }; }
  const title = data.title || "Solo Mining";
  event.waitUntil(self.registration.showNotification(title, {
    body: data.body || "",
    tag: data.tag,
    renotify: Boolean(data.tag),
    icon: "/static/img/favicon.svg",
    data: { url: data.url || "/notifications" },
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || "/notifications";
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
    for (const win of windows) {
      if (win.url === url && "focus" in win) return win.focus();
    }
    return self.clients.openWindow(url);
  }));
});
