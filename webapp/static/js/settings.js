// Settings page: propose the browser's time zone while the default (UTC) is
// set, and the Web Push switch (service worker + PushManager subscription,
// stored through /api/push/subscriptions). No inline script: the CSP forbids it.
(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  // ---- time zone ------------------------------------------------------------
  const zoneInput = document.getElementById("timezone");
  const proposal = document.getElementById("timezone-proposal");
  let browserZone = "";
  try { browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { browserZone = ""; }
  if (zoneInput && proposal && browserZone && zoneInput.dataset.chosen !== "1" && zoneInput.value !== browserZone) {
    proposal.textContent = "Your browser says you are in " + browserZone + ". ";
    const use = document.createElement("button");
    use.type = "button";
    use.className = "linklike";
    use.textContent = "Use " + browserZone;
    use.addEventListener("click", () => {
      zoneInput.value = browserZone;
      zoneInput.dispatchEvent(new Event("change", { bubbles: true }));
      proposal.hidden = true;
    });
    proposal.appendChild(use);
    proposal.hidden = false;
  }

  // ---- Web Push -------------------------------------------------------------
  const toggle = document.getElementById("push-switch");
  const status = document.getElementById("push-status");
  const supported = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  if (!toggle || !supported) return;
  document.getElementById("push-support").hidden = false;
  document.getElementById("push-unsupported").hidden = true;
  const say = (text) => { status.textContent = text; };
  const keyBytes = (b64) => {
    const raw = atob((b64 + "=".repeat((4 - (b64.length % 4)) % 4)).replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  };
  const send = (method, body) => fetch(toggle.dataset.subscriptionsUrl, {
    method, credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
    body: JSON.stringify(body),
  }).then((r) => { if (!r.ok && r.status !== 404) throw new Error("HTTP " + r.status); return r; });
  const registration = navigator.serviceWorker.register(toggle.dataset.workerUrl, { scope: "/" });

  registration.then((reg) => reg.pushManager.getSubscription()).then((sub) => {
    toggle.checked = Boolean(sub) && Notification.permission === "granted";
    say(toggle.checked ? "This browser receives push notifications." : "");
  }).catch(() => say("Push could not start in this browser."));

  toggle.addEventListener("change", async (event) => {
    event.stopPropagation(); // not part of the settings form's save
    toggle.disabled = true;
    try {
      const reg = await registration;
      if (toggle.checked) {
        if (await Notification.requestPermission() !== "granted") {
          toggle.checked = false;
          say("Notifications are blocked for this site in the browser's settings.");
          return;
        }
        const key = (await (await fetch(toggle.dataset.keyUrl)).json()).public_key;
        const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
        await send("POST", sub.toJSON());
        say("This browser receives push notifications.");
      } else {
        const sub = await reg.pushManager.getSubscription();
        if (sub) {
          await send("DELETE", { endpoint: sub.endpoint });
          await sub.unsubscribe();
        }
        say("Push notifications are off for this browser.");
      }
    } catch (error) {
      toggle.checked = !toggle.checked;
      say("That did not work: " + error.message);
    } finally {
      toggle.disabled = false;
    }
  });
})();
