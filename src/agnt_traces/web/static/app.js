// AGNT Traces web page: the little the page needs beyond plain forms. No framework, no build step.
"use strict";

// Running a playground takes as long as the slowest model: say so while the form posts.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.matches(".run-form")) return;
  const status = form.querySelector(".progress");
  const button = form.querySelector("button[type=submit]");
  const started = Date.now();
  form.classList.add("busy");
  if (button) {
    // Disable after the browser has taken the submission, so the click still posts.
    setTimeout(() => { button.disabled = true; }, 0);
  }
  const tick = () => {
    const seconds = Math.round((Date.now() - started) / 1000);
    if (status) status.textContent = `${form.dataset.running || "Running…"} ${seconds} s`;
  };
  tick();
  setInterval(tick, 1000);
});

// Keep the hash target (after a redirect to #outputs, #blocks…) visible and focusable for keyboards.
window.addEventListener("load", () => {
  if (!location.hash) return;
  const target = document.getElementById(location.hash.slice(1));
  if (target) {
    target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: false });
  }
});
