// The console's own script: no inline scripts anywhere (the CSP forbids them).
"use strict";

// A language chosen in the header applies at once.
document.querySelectorAll("select.autosubmit").forEach(function (select) {
  select.addEventListener("change", function () { select.form.submit(); });
});

// The inbox's live part (counts and rows) is fetched again every few seconds, so new
// reports appear without reloading. A session that ended shows the logged-out page.
(function () {
  var live = document.getElementById("live");
  if (!live) { return; }
  var every = 5000;
  function refresh() {
    fetch(live.dataset.src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (answer) {
        if (answer.status === 403) { window.location.reload(); return null; }
        return answer.ok ? answer.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) { live.innerHTML = html; }
        live.dataset.refreshed = String(Number(live.dataset.refreshed || "0") + 1);
      })
      .catch(function () { /* the server is restarting: try again next time */ })
      .finally(function () { window.setTimeout(refresh, every); });
  }
  window.setTimeout(refresh, every);
})();
