// DAGnostics Feedback review page: log lines <-> error lines, "edited" markers, rating and submit shortcuts.
// Log text is only ever read with textContent and written into a textarea's value: never parsed as HTML.
(function () {
  "use strict";

  var form = document.getElementById("correction");
  if (!form) return;
  var ai = JSON.parse(form.dataset.ai);
  var errorLines = document.getElementById("error_lines");
  var logLines = Array.prototype.slice.call(document.querySelectorAll("#log li"));

  function lines(text) {
    return text.split("\n").map(function (line) { return line.trim(); }).filter(Boolean);
  }

  function normalised(name, value) {
    if (name === "error_lines" || name === "suggested_actions") return lines(value).join("\n");
    if (name === "confidence") return value === "" || isNaN(Number(value)) ? value : Number(value).toFixed(2);
    return value.trim();
  }

  function currentValue(name) {
    var field = form.elements[name];
    return field.value !== undefined ? field.value : "";
  }

  function markEdited() {
    Object.keys(ai).forEach(function (name) {
      var wrapper = form.querySelector('[data-field="' + name + '"]');
      if (!wrapper) return;
      var edited = normalised(name, currentValue(name)) !== normalised(name, ai[name]);
      wrapper.classList.toggle("is-edited", edited);
      var badge = wrapper.querySelector(".edited");
      if (badge) badge.hidden = !edited;
    });
  }

  function highlightSelected() {
    var chosen = new Set(lines(errorLines.value));
    logLines.forEach(function (li) {
      li.classList.toggle("sel", chosen.has(li.querySelector("code").textContent.trim()));
    });
  }

  logLines.forEach(function (li) {
    if (li.classList.contains("gap")) return;
    li.addEventListener("click", function () {
      var text = li.querySelector("code").textContent.trim();
      if (!text) return;
      var current = lines(errorLines.value);
      var at = current.indexOf(text);
      if (at >= 0) { current.splice(at, 1); } else { current.push(text); }
      errorLines.value = current.join("\n");
      highlightSelected();
      markEdited();
    });
  });

  form.addEventListener("input", function (event) {
    if (event.target === errorLines) highlightSelected();
    markEdited();
  });
  form.addEventListener("change", markEdited);

  // The chosen category's definition (docs/categories.md) stays visible under the select.
  var category = document.getElementById("category");
  var definition = document.getElementById("category-definition");
  function showDefinition() {
    definition.textContent = category.options[category.selectedIndex].dataset.definition || "";
  }
  category.addEventListener("change", showDefinition);
  document.getElementById("category-guide-link").addEventListener("click", function () {
    document.getElementById("category-guide").open = true;
  });

  document.getElementById("reset").addEventListener("click", function () {
    Object.keys(ai).forEach(function (name) {
      var field = form.elements[name];
      if (field instanceof RadioNodeList) {
        Array.prototype.forEach.call(field, function (radio) { radio.checked = radio.value === ai[name]; });
      } else {
        field.value = ai[name];
      }
    });
    highlightSelected();
    markEdited();
    showDefinition();
  });

  // A review needs a rating; accepting without one means 5 (the server applies the same rule).
  form.addEventListener("submit", function (event) {
    var action = event.submitter ? event.submitter.value : "submit";
    if (action === "submit" && !form.querySelector('input[name="rating"]:checked')) {
      event.preventDefault();
      var rating = document.getElementById("rating");
      rating.classList.add("missing");
      rating.scrollIntoView({ block: "center" });
      window.alert("Rate the AI analysis first (keys 1–5).");
    }
  });

  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit(document.getElementById("submit"));
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var help = document.getElementById("help");
    if (help && help.open) return;
    if (/^[1-5]$/.test(event.key)) {
      var star = document.getElementById("rating-" + event.key);
      star.checked = true;
      star.dispatchEvent(new Event("change", { bubbles: true }));
      event.preventDefault();
    } else if (event.key === "a") {
      event.preventDefault();
      form.requestSubmit(document.getElementById("accept"));
    } else if (event.key === "e") {
      event.preventDefault();
      document.getElementById("error_message").focus();
    }
  });

  markEdited();
})();
