// DAGnostics Feedback: keyboard navigation and the help overlay, shared by every page. Vanilla JS, no CDN.
(function () {
  "use strict";

  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function follow(id) {
    var link = document.getElementById(id);
    if (link && link.href) { window.location.href = link.href; return true; }
    return false;
  }

  // The help overlay: "?" anywhere, or the "?" button.
  var help = document.getElementById("help");
  function toggleHelp() {
    if (!help) return;
    if (help.open) { help.close(); } else { help.showModal(); }
  }
  document.querySelectorAll("[data-action=help]").forEach(function (button) {
    button.addEventListener("click", toggleHelp);
  });

  // Queue rows: the whole row opens the item; j/k move a selection, Enter opens it.
  var rows = Array.prototype.slice.call(document.querySelectorAll("#queue tbody tr[data-href]"));
  var selected = rows.length ? 0 : -1;
  function select(index, scroll) {
    if (!rows.length) return;
    selected = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach(function (row, i) { row.classList.toggle("selected", i === selected); });
    if (scroll !== false) rows[selected].scrollIntoView({ block: "nearest", inline: "nearest" });
  }
  rows.forEach(function (row, index) {
    row.addEventListener("click", function (event) {
      if (event.target.closest("a, button, input, select, textarea")) return;
      select(index);
      window.location.href = row.dataset.href;
    });
  });
  if (rows.length) select(0, false);

  var page = document.body.dataset.page;
  var pageKeys = {
    queue: {
      j: function () { select(selected + 1); return true; },
      k: function () { select(selected - 1); return true; },
      Enter: function () { if (selected >= 0) { window.location.href = rows[selected].dataset.href; } return true; },
      o: function () { if (selected >= 0) { window.location.href = rows[selected].dataset.href; } return true; },
      n: function () { return follow("next-unreviewed"); },
      "/": function () { var dag = document.getElementById("filter-dag"); if (dag) { dag.focus(); } return !!dag; }
    },
    review: {
      j: function () { return follow("next-item"); },
      k: function () { return follow("prev-item"); },
      n: function () { return follow("next-unreviewed"); },
      u: function () { return follow("back"); }
    }
  };

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      if (typing(event.target)) { event.target.blur(); }
      return;
    }
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === "?") { toggleHelp(); event.preventDefault(); return; }
    if (help && help.open) return;
    var handler = (pageKeys[page] || {})[event.key];
    if (handler && handler()) { event.preventDefault(); }
  });
})();
