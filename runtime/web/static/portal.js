// ttr change portal: small enhancements only; every page works without them.
(function () {
  "use strict";

  // Times: shown in the reader's own time zone (the server writes UTC).
  var timeFormat = null;
  try {
    timeFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short",
      year: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
  } catch (e) { /* keep UTC */ }
  var localize = function (root) {
    if (!timeFormat) return;
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d.getTime())) {
        el.title = el.textContent;
        el.textContent = timeFormat.format(d);
      }
    });
  };
  localize(document);

  // A change window in the reader's own zone: "Mon 7 Dec 2026, 08:00 – 10:00 CET".
  try {
    var dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short",
      year: "numeric", hour: "2-digit", minute: "2-digit" });
    var hourFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
    var dateOnly = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "2-digit", day: "2-digit" });
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    document.querySelectorAll("[data-local-window]").forEach(function (el) {
      var s = new Date(el.getAttribute("data-start")), e = new Date(el.getAttribute("data-end"));
      if (isNaN(s.getTime()) || isNaN(e.getTime())) return;
      var end = dateOnly.format(s) === dateOnly.format(e) ? hourFormat.format(e) : timeFormat.format(e);
      el.textContent = dayFormat.format(s) + " \u2013 " + end + (zone ? " (your zone, " + zone + ")" : "");
    });
  } catch (e) { /* keep the change's own zone */ }

  // Ask before buttons that tell customers something.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-confirm]");
    if (btn && !window.confirm(btn.getAttribute("data-confirm"))) {
      ev.preventDefault();
    }
  });

  // Show/hide panels (reschedule form, meeting fields).
  document.querySelectorAll("[data-toggle]").forEach(function (el) {
    var target = document.getElementById(el.getAttribute("data-toggle"));
    if (!target) return;
    var sync = function () {
      var on = el.type === "checkbox" ? el.checked : !target.classList.contains("is-off");
      target.classList.toggle("is-off", !on);
    };
    if (el.type === "checkbox") {
      el.addEventListener("change", sync);
    } else {
      el.addEventListener("click", function () {
        target.classList.toggle("is-off");
        if (!target.classList.contains("is-off")) {
          var first = target.querySelector("input");
          if (first) first.focus();
        }
      });
    }
  });

  // A new change defaults to the browser's time zone.
  document.querySelectorAll("[data-default-zone]").forEach(function (el) {
    if (!el.value && window.Intl) {
      try { el.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { /* keep empty */ }
    }
  });

  // The change form: say at once when the end is not after the start.
  document.querySelectorAll("[data-change-form]").forEach(function (form) {
    var start = form.querySelector("#start"), end = form.querySelector("#end");
    if (!start || !end) return;
    var check = function () {
      var bad = start.value && end.value && end.value <= start.value;
      end.setCustomValidity(bad ? "The end must be after the start." : "");
      var holder = end.closest(".field");
      var msg = holder.querySelector(".field-error.js");
      if (bad && !msg) {
        msg = document.createElement("p");
        msg.className = "field-error js";
        msg.textContent = "The end must be after the start.";
        holder.appendChild(msg);
      } else if (!bad && msg) {
        msg.remove();
      }
      holder.classList.toggle("has-error", !!bad || !!holder.querySelector(".field-error:not(.js)"));
    };
    start.addEventListener("change", check);
    end.addEventListener("change", check);
  });

  // Select the whole token on focus, for copying.
  document.querySelectorAll("[data-select-all]").forEach(function (el) {
    el.addEventListener("focus", function () { el.select(); });
  });

  // The change page: refresh the delivery status while customers are being notified.
  var wrap = document.querySelector("[data-poll]");
  if (wrap) {
    var url = wrap.getAttribute("data-poll");
    var started = Date.now();
    var tick = function () {
      if (Date.now() - started > 10 * 60 * 1000) return;  // stop after 10 minutes
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) return;
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var fresh = holder.querySelector("#delivery");
          var old = wrap.querySelector("#delivery");
          if (fresh && old && fresh.outerHTML !== old.outerHTML) {
            localize(fresh);
            old.replaceWith(fresh);
          }
          if (fresh && fresh.getAttribute("data-done") === "1") return;
          window.setTimeout(tick, 2000);
        })
        .catch(function () { window.setTimeout(tick, 5000); });
    };
    window.setTimeout(tick, 1500);
  }
})();
