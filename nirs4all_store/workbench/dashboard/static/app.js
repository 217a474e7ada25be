/* nirs4all-store dashboard: draws the figures embedded in the page (plotly.js served by the
 * dashboard itself) and keeps live sections up to date by polling the store's change token.
 * For tests and debugging, <body> carries data-plots-rendered (ids of drawn plots),
 * data-plots-done ("1" once every plot of the page is drawn) and data-js-errors (JSON list). */
(function () {
  "use strict";
  var body = document.body;
  var errors = [];
  var rendered = [];

  function note(message) {
    errors.push(String(message));
    body.setAttribute("data-js-errors", JSON.stringify(errors));
  }
  window.addEventListener("error", function (e) { note(e.message || e); });
  window.addEventListener("unhandledrejection", function (e) { note(e.reason || "rejected promise"); });
  var consoleError = console.error;
  console.error = function () {
    note(Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };

  function renderPlots(root) {
    var divs = root.querySelectorAll("[data-figure]");
    var jobs = [];
    if (divs.length && typeof Plotly === "undefined") {
      note("plotly.js did not load");
      return Promise.resolve();
    }
    divs.forEach(function (div) {
      var source = document.getElementById(div.getAttribute("data-figure"));
      if (!source) { note("no figure data for " + div.id); return; }
      var figure = JSON.parse(source.textContent);
      var config = { responsive: true, displaylogo: false };
      jobs.push(Plotly.react(div, figure.data, figure.layout, config).then(function () {
        if (rendered.indexOf(div.id) < 0) { rendered.push(div.id); }
        div.setAttribute("data-rendered", "1");
      }));
    });
    return Promise.all(jobs).then(function () {
      body.setAttribute("data-plots-rendered", rendered.join(" "));
      body.setAttribute("data-plots-done", "1");
    }).catch(note);
  }

  function poll(section) {
    var tokenUrl = section.getAttribute("data-token-url");
    var fragmentUrl = section.getAttribute("data-fragment-url");
    var every = parseInt(section.getAttribute("data-poll-ms") || "3000", 10);
    function state() { return section.querySelector(".live-state"); }
    function tick() {
      var current = state();
      if (!current || current.getAttribute("data-live") !== "1") { return; }
      fetch(tokenUrl, { headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })  /* 503: busy, try later */
        .then(function (answer) {
          if (!answer || answer.token === current.getAttribute("data-token")) { return null; }
          return fetch(fragmentUrl).then(function (r) { return r.ok ? r.text() : null; });
        })
        .then(function (html) {
          if (html === null || html === undefined) { return; }
          section.querySelectorAll("[data-figure]").forEach(function (div) { Plotly.purge(div); });
          section.innerHTML = html;
          section.setAttribute("data-updates", String(1 + parseInt(section.getAttribute("data-updates") || "0", 10)));
          return renderPlots(section);
        })
        .catch(function () { /* server restarting or busy: keep polling */ })
        .then(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }

  renderPlots(document);
  document.querySelectorAll("section.live[data-token-url]").forEach(poll);
})();
