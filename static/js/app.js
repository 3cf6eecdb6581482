// Toasts fade out after a few seconds, also when HTMX adds them out of band.
(function () {
  function schedule(root) {
    root.querySelectorAll(".toast:not([data-scheduled])").forEach(function (toast) {
      toast.dataset.scheduled = "1";
      setTimeout(function () { toast.classList.add("fading"); }, 5000);
      setTimeout(function () { toast.remove(); }, 5500);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { schedule(document); });
  document.addEventListener("htmx:afterSettle", function () { schedule(document); });
})();
