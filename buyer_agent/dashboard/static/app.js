// The dashboard's only script: live updates over server-sent events, and filters that apply on change.
// Fragments arrive rendered (and escaped) by the server's templates; no market text is handled here.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live && live.dataset.live && window.EventSource) {
    const source = new EventSource(live.dataset.live);
    source.addEventListener("update", (message) => {
      const doc = JSON.parse(message.data);
      live.innerHTML = doc.html;
      live.dataset.updates = String(Number(live.dataset.updates || "0") + 1);
    });
    source.addEventListener("open", () => { live.dataset.connected = "yes"; });
    window.addEventListener("beforeunload", () => source.close());
  }
  for (const select of document.querySelectorAll("form.filters select")) {
    select.addEventListener("change", () => select.form.submit());
  }
});
