// mcc's dashboard: the server renders every part; this script only
// fetches the live part again when the daemon's event stream says
// something changed (and every few seconds, for the ages). What it puts
// in the page is the server's html/template output, escaped there.
(function () {
  "use strict";
  var live = document.querySelector("[data-live]");
  if (!live) { return; }
  var part = live.getAttribute("data-live");
  var events = live.getAttribute("data-events");
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(part, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (res) {
        if (res.status === 401) { window.location = "/ui/login"; return null; }
        return res.ok ? res.text() : null;
      })
      .then(function (html) {
        // Keep what the operator is typing in a form across a refresh.
        var active = document.activeElement, id = active && active.id, value = active && active.value;
        if (html !== null && html !== undefined) { live.innerHTML = html; }
        if (id) {
          var el = document.getElementById(id);
          if (el) { el.value = value; el.focus(); }
        }
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; setTimeout(refresh, 200); }
      });
  }
  var source = new EventSource(events);
  ["participant", "stream", "reinvite", "sap", "reception", "alert"].forEach(function (kind) {
    source.addEventListener(kind, refresh);
  });
  source.onopen = refresh; // after a reconnect, catch up
  setInterval(refresh, 5000);
})();
