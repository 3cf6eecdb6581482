// Error notebook pages: show refusals (400, 409) in place, explain 403s in a toast, select all rows.
(function () {
  if (window.casesToast) return;

  window.casesToast = function (text, kind) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var toast = document.createElement("div");
    toast.className = "toast toast-" + (kind || "info");
    toast.setAttribute("role", "status");
    toast.textContent = text;
    box.appendChild(toast);
    setTimeout(function () { toast.classList.add("fading"); }, 5000);
    setTimeout(function () { toast.remove(); }, 5500);
  };

  // Our views answer a refused form with the re-rendered panel (the problem named in it): swap it in.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 400 || status === 409) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    if (status === 403) {
      window.casesToast("Not allowed: your roles do not permit this action.", "error");
    } else if (status >= 500) {
      window.casesToast("Something broke on the server (" + status + "); it has been logged.", "error");
    }
  });

  document.addEventListener("htmx:sendError", function () {
    window.casesToast("The server could not be reached; nothing was saved.", "error");
  });

  document.addEventListener("change", function (event) {
    if (event.target.id !== "select-all") return;
    document.querySelectorAll('input[name="ids"][form="bulk-form"]').forEach(function (box) {
      box.checked = event.target.checked;
    });
  });
})();
