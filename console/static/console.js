// The console's only script: confirmation before a form that changes something for good.
// Loaded from this file (the CSP allows no inline script).
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
