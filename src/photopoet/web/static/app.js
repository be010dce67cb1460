// photopoet review: the only script. It polls /api/status while a job runs: the progress page shows the stage
// and the counts; the review page reloads itself when a regeneration or an export is done.
(function () {
  "use strict";
  function el(tag, text) { var e = document.createElement(tag); if (text !== undefined) e.textContent = text; return e; }

  function showProgress(root, job) {
    var title = document.getElementById("job-title");
    if (job && title) title.textContent = job.title;
    var seen = true;
    root.querySelectorAll(".stages li").forEach(function (li) {
      var key = li.getAttribute("data-stage");
      li.className = "";
      if (!job) return;
      if (job.done && !job.error) { li.className = "done"; return; }
      if (key === job.stage) { li.className = "now"; seen = false; }
      else if (seen && job.stage) { li.className = "done"; }
    });
    var bars = document.getElementById("bars");
    bars.textContent = "";
    (job && job.bars || []).forEach(function (b) {
      var row = el("div");
      row.appendChild(el("span", b.desc || "working"));
      var p = el("progress");
      if (b.total) { p.max = b.total; p.value = b.n; }
      row.appendChild(p);
      row.appendChild(el("span", b.total ? b.n + " / " + b.total : String(b.n)));
      bars.appendChild(row);
    });
    if (job) document.getElementById("elapsed").textContent = job.elapsed_s + " s";
    if (job && job.done) {
      if (job.error) {
        var err = document.getElementById("job-error");
        err.textContent = job.error; err.hidden = false;
      } else {
        document.getElementById("job-done").hidden = false;
        if (job.kind === "run") window.location.assign("/review");
      }
      return true;
    }
    return false;
  }

  function poll(url, onData) {
    function tick() {
      fetch(url, { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (data) {
        if (!onData(data)) window.setTimeout(tick, 1000);
      }).catch(function () { window.setTimeout(tick, 2000); });
    }
    tick();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var progress = document.getElementById("progress");
    if (progress) {
      poll(progress.getAttribute("data-poll"), function (data) { return showProgress(progress, data.job); });
    }
    var job = document.getElementById("job");
    if (job && job.getAttribute("data-busy") === "yes") {
      poll(job.getAttribute("data-poll"), function (data) {
        if (!data.busy) { window.location.reload(); return true; }
        return false;
      });
    }
    // a form sent twice by a double click would apply its edit twice
    document.querySelectorAll("form").forEach(function (f) {
      f.addEventListener("submit", function () {
        window.setTimeout(function () {
          f.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
        }, 0);
      });
    });
  });
})();
