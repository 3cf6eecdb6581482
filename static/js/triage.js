// Triage mode keyboard shortcuts. Every shortcut presses a visible button or link, so the page works without JS.
(function () {
  function byId(id) { return document.getElementById(id); }

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function press(id) {
    var el = byId(id);
    if (!el) return false;
    if (el.disabled) {
      window.casesToast && window.casesToast(el.title || "Not possible for this case.", "warning");
      return true;
    }
    el.click();
    return true;
  }

  function focus(el) {
    if (!el) return false;
    el.focus();
    if (el.select && el.tagName.toLowerCase() === "textarea") {
      el.setSelectionRange(el.value.length, el.value.length);
    }
    el.scrollIntoView({ block: "center", behavior: "smooth" });
    return true;
  }

  function showHelp() {
    var dialog = byId("shortcut-help");
    if (dialog && !dialog.open) dialog.showModal();
  }

  function hint(text) {
    if (window.casesToast) window.casesToast(text, "warning");
    return true;
  }

  var keys = {
    a: function () { return press("approve-button") || hint("Approving is not possible here: it needs the PM or Admin role."); },
    r: function () { return focus(byId("reject-reason")) || hint("Rejecting is not possible here: it needs the PM or Admin role and an open case."); },
    j: function () { return press("next-link"); },
    ArrowRight: function () { return press("next-link"); },
    k: function () { return press("previous-link"); },
    ArrowLeft: function () { return press("previous-link"); },
    e: function () { return focus(byId("id_expected_output")); },
    t: function () { return focus(document.querySelector('#tag-form input[type="checkbox"]')); },
    "?": function () { showHelp(); return true; },
  };

  document.addEventListener("keydown", function (event) {
    if (!byId("triage-panel")) return;
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return; // Enter in the reason field submits the reject form the ordinary way
    }
    var dialog = byId("shortcut-help");
    if (dialog && dialog.open) return;
    var action = keys[event.key];
    if (action && action()) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("#shortcut-help-button")) showHelp();
  });
})();
