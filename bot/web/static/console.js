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

// Composing an alert: each text's length against the limit as it is typed; the number of
// recipients as the audience changes; after any change the preview is stale, so "Send"
// waits for a new preview.
(function () {
  var form = document.getElementById("compose");
  if (!form) { return; }
  form.querySelectorAll("textarea.counted").forEach(function (area) {
    var counter = document.getElementById("counter-" + area.lang);
    var limit = Number(area.dataset.limit);
    function count() {
      var length = area.value.length;
      counter.textContent = counter.dataset.template.replace("{count}", String(length));
      counter.classList.toggle("over", length > limit);
      area.classList.toggle("over", length > limit);
    }
    area.addEventListener("input", count);
    count();
  });
  var audience = document.getElementById("audience");
  var reach = document.getElementById("reach");
  function recount() {
    var query = new URLSearchParams();
    audience.querySelectorAll("select, input:checked").forEach(function (field) {
      query.append(field.name, field.value);
    });
    fetch(audience.dataset.src + "?" + query.toString(), { credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (found) {
        if (found) { reach.textContent = found.text; reach.dataset.count = String(found.count); }
      })
      .catch(function () { /* try again at the next change */ });
  }
  audience.addEventListener("change", recount);
  function stale() {
    form.querySelectorAll("#send, #send-urgent").forEach(function (button) {
      button.disabled = true;
    });
  }
  form.addEventListener("input", stale);
  form.addEventListener("change", stale);
})();
