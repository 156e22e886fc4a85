// The adjudication page: 1-9 give that label, Enter gives the weighted answer; each submits the page's form.
"use strict";

const form = document.getElementById("adjudicate-form");
if (form) {
  const buttons = [...form.querySelectorAll("button[name=label]")];
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const index = Number(event.key);
    let chosen = null;
    if (Number.isInteger(index) && index >= 1 && index <= Math.min(9, buttons.length)) chosen = buttons[index - 1];
    else if (event.key === "Enter") chosen = form.querySelector("button.suggested");
    if (chosen) {
      event.preventDefault();
      chosen.click();
    }
  });
}
