// returnpath review desk: progressive enhancement only. Without scripts every page works and
// refreshes itself through <noscript><meta http-equiv=refresh>.
"use strict";
(function () {
  function bindCopy(root) {
    root.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
      if (!navigator.clipboard) { return; }
      b.hidden = false;
      b.addEventListener("click", function () {
        var pre = document.getElementById(b.getAttribute("data-copy"));
        if (!pre) { return; }
        navigator.clipboard.writeText(pre.innerText.replace(/\n$/, "")).then(function () {
          say("Copied.");
        }, function () { say("Copying failed: select the text instead."); });
      });
    });
  }

  function say(text) {
    var u = document.getElementById("updates");
    if (u) { u.textContent = text; }
  }

  // busy reports whether the user is in the middle of something a refresh would destroy.
  function busy() {
    var a = document.activeElement;
    if (!a || a === document.body) { return false; }
    if (a.tagName === "TEXTAREA" && a.value !== "") { return true; }
    if (a.tagName === "INPUT" && a.type !== "hidden") { return true; }
    return false;
  }

  var pending = false, stream = null;

  // refresh fetches the page again and swaps its main part, then listens from what it shows.
  function refresh() {
    if (busy()) {
      pending = true;
      say("This page has changed: reload it to see the news.");
      return;
    }
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } }).then(function (r) {
      if (r.redirected || !r.ok) { location.reload(); return null; }
      return r.text();
    }).then(function (html) {
      if (html === null) { return; }
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.getElementById("main"), main = document.getElementById("main");
      if (!fresh || !main) { location.reload(); return; }
      main.innerHTML = fresh.innerHTML;
      bindCopy(main);
      say("Updated " + new Date().toLocaleTimeString() + ".");
      var live = doc.body.getAttribute("data-live");
      if (live) {
        document.body.setAttribute("data-live", live);
        listen();
      } else {
        document.body.removeAttribute("data-live");
      }
    }, function () { setTimeout(refresh, 5000); });
  }

  function listen() {
    var url = document.body.getAttribute("data-live");
    if (!url || !window.EventSource) { return; }
    stream = new EventSource(url);
    stream.addEventListener("refresh", function () {
      stream.close();
      refresh();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    bindCopy(document);
    listen();
    document.addEventListener("focusout", function () {
      if (pending && !busy()) { pending = false; refresh(); }
    });
  });
})();
