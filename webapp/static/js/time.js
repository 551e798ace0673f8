// Local time: every <time datetime data-style> the server wrote
// (webapp/formatting.py time_tag) in the viewer's zone.
// - <html data-tz> is the signed-in user's zone: the server already wrote
//   the text in it; here only "relative" text ("2 min ago") is kept fresh.
// - Without data-tz (logged out) the server wrote UTC: each time is
//   rewritten in the browser's zone, title included.
// - The time-zone banner (templates/_timezone_banner.html) offers the
//   browser's zone to a signed-in user still on UTC ("Keep UTC" dismisses it
//   in this browser until the browser's zone changes).
// window.SoloTime exposes the zone and the formatters to charts.js.
(function () {
  "use strict";
  const browserZone = (() => {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { return "UTC"; }
  })();
  const serverZone = document.documentElement.dataset.tz || "";
  const zone = serverZone || browserZone;
  const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December"];
  const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

  // Wall-clock fields of a Date in a zone.
  function fields(date, tz) {
    const parts = {};
    new Intl.DateTimeFormat("en-GB", {
      timeZone: tz, year: "numeric", month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit",
      second: "2-digit", weekday: "long", hourCycle: "h23", timeZoneName: "short",
    }).formatToParts(date).forEach((p) => { parts[p.type] = p.value; });
    return {
      y: +parts.year, m: +parts.month, d: +parts.day, H: parts.hour, M: parts.minute, S: parts.second,
      weekday: parts.weekday, zoneName: parts.timeZoneName,
    };
  }
  const pad = (n) => String(n).padStart(2, "0");
  const dayNumber = (f) => Date.UTC(f.y, f.m - 1, f.d) / 86400000;

  function relative(date, now) {
    let seconds = ((now || Date.now()) - date.getTime()) / 1000;
    const ahead = seconds < 0;
    seconds = Math.abs(seconds);
    if (seconds < 60) return "just now";
    let text;
    if (seconds < 3600) text = `${Math.floor(seconds / 60)} min`;
    else if (seconds < 86400) text = `${Math.floor(seconds / 3600)} h`;
    else { const days = Math.floor(seconds / 86400); text = `${days} day${days === 1 ? "" : "s"}`; }
    return ahead ? `in ${text}` : `${text} ago`;
  }

  // The styles of formatting.TIME_FORMATS plus formatting.EXTRA_STYLES.
  function format(date, style, tz) {
    tz = tz || zone;
    const f = fields(date, tz);
    const ymd = `${f.y}-${pad(f.m)}-${pad(f.d)}`;
    switch (style) {
      case "date": return ymd;
      case "datetime_seconds": return `${ymd} ${f.H}:${f.M}:${f.S}`;
      case "clock": return `${f.H}:${f.M}`;
      case "clock_seconds": return `${f.H}:${f.M}:${f.S}`;
      case "month": return `${MONTHS[f.m - 1]} ${f.y}`;
      case "relative": return relative(date);
      case "day_clock": return `${f.d} ${MONTHS[f.m - 1].slice(0, 3)} ${f.H}:${f.M}`;
      case "notification": {
        const today = dayNumber(fields(new Date(), tz));
        if (dayNumber(f) >= today - 1) return `${f.H}:${f.M}`;
        return `${f.d} ${MONTHS[f.m - 1].slice(0, 3)} ${f.H}:${f.M}`;
      }
      default: return `${ymd} ${f.H}:${f.M}`;
    }
  }

  function full(date, tz) {
    const f = fields(date, tz || zone);
    return `${f.weekday} ${pad(f.d)} ${MONTHS[f.m - 1]} ${f.y}, ${f.H}:${f.M}:${f.S} ${f.zoneName}`;
  }

  function refresh(root) {
    (root || document).querySelectorAll("time[data-style]").forEach((el) => {
      const style = el.dataset.style;
      const date = new Date(el.getAttribute("datetime"));
      if (Number.isNaN(date.getTime())) return;
      if (style === "relative") {
        const text = relative(date);
        if (el.textContent !== text) el.textContent = text;
      } else if (!serverZone && !el.dataset.localised) {
        el.textContent = format(date, style);
      }
      if (!serverZone && !el.dataset.localised) {
        el.title = full(date);
        el.dataset.localised = "1";
      }
    });
  }

  function banner() {
    const box = document.getElementById("timezone-banner");
    document.querySelectorAll("[data-browser-zone]").forEach((el) => { el.textContent = browserZone; });
    const dismissed = "solo.timezone-offer.dismissed";
    let kept = false;
    try { kept = window.localStorage.getItem(dismissed) === browserZone; } catch (e) { /* storage off */ }
    if (!box || kept || browserZone === "UTC" || browserZone === serverZone) return;
    box.hidden = false;
    const save = (value) => {
      const token = document.querySelector('meta[name="csrf-token"]');
      return fetch("/api/settings", {
        method: "PATCH", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token ? token.content : "" },
        body: JSON.stringify({ notifications: { timezone: value } }),
      }).then((resp) => {
        if (!resp.ok) throw new Error(`settings: ${resp.status}`);
        window.location.reload();
      }).catch(() => {
        box.querySelector("span").textContent = "Could not save the time zone; try again from Settings.";
      });
    };
    box.addEventListener("click", (event) => {
      if (event.target.closest("[data-timezone-use]")) save(browserZone);
      if (event.target.closest("[data-timezone-keep]")) {
        try { window.localStorage.setItem(dismissed, browserZone); } catch (e) { /* storage off */ }
        box.hidden = true;
      }
    });
  }

  window.SoloTime = { zone, browserZone, serverZone, format, full, relative, refresh };
  const start = () => {
    refresh();
    banner();
    setInterval(() => refresh(), 30000);
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
  // Content swapped in by htmx or pushed by the socket.
  document.addEventListener("htmx:afterSettle", (event) => refresh(event.target));
  document.addEventListener("htmx:wsAfterMessage", () => refresh());
})();
