// The review page: keyboard-first (1-9 answer, Enter accepts the suggestion, S skips, Z undoes). Uniform draws
// (cold start, audits) come blind: no suggestion is shown, so Enter has nothing to accept. In a multi_label task
// 1-9 toggle labels in the answer, which starts as the suggestion (empty when blind), and Enter submits it: an
// empty answer says that no label applies. In a spans task the answer is the spans drawn on the text (span_editor.js),
// starting as the suggested ones (none when blind), and Enter submits them: no span says that the text has no entity.
// Talks to the JSON API with the session cookie, each change carrying the session's CSRF token; every text goes
// into the page through textContent.
"use strict";

const root = document.getElementById("review");
const task = root.dataset.task;
const labels = JSON.parse(root.dataset.labels).map((label) => label.name);
const multi = root.dataset.kind === "multi_label";
const spans = root.dataset.kind === "spans";
const csrf = root.dataset.csrf;
const $ = (id) => document.getElementById(id);
const editor = spans ? new SpanEditor($("item-text"), labels) : null;
let current = null;
let chosen = new Set();
let busy = false;
let answered = 0;

class ProblemError extends Error {}

async function api(path, method = "GET", body = undefined) {
  const response = await fetch(`/v1/tasks/${encodeURIComponent(task)}${path}`, {
    method,
    credentials: "same-origin",
    headers: {
      ...(method === "GET" ? {} : { "X-CSRF-Token": csrf }),
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    window.location.assign("/review");
    throw new ProblemError("your session has ended; log in again");
  }
  if (response.status === 204) return null;
  const payload = await response.json();
  if (!response.ok) throw new ProblemError(payload.detail || `request failed (${response.status})`);
  return payload;
}

function say(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

function percent(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value * 100)}%`;
}

function named(label, text) {
  if (!Array.isArray(label)) return label;
  if (spans) {
    const points = Array.from(text || "");
    const shown = label.map((span) => `${points.slice(span.start, span.end).join("")} → ${span.label}`);
    return shown.length ? shown.join(", ") : "no entity";
  }
  return label.length ? label.join(", ") : "no label";
}

function showChosen() {
  for (const button of document.querySelectorAll("button.label")) {
    const on = chosen.has(button.dataset.label);
    button.classList.toggle("chosen", on);
    button.setAttribute("aria-pressed", on ? "true" : "false");
  }
  root.dataset.chosen = labels.filter((label) => chosen.has(label)).join(",");
}

function show(item) {
  current = item;
  root.dataset.itemId = item ? String(item.item_id) : "";
  root.dataset.suggestion = item && item.suggestion ? String(item.suggestion) : "";
  $("item").hidden = !item;
  $("empty").hidden = Boolean(item);
  if (!item) return;
  $("item-kind").textContent = item.required > 1 ? `${item.kind} · ${item.votes + 1} of ${item.required}` : item.kind;
  $("item-ref").textContent = `#${item.item_id} · ${item.external_id}${item.truncated ? " · truncated for the model" : ""}`;
  if (spans) editor.load(item.text, item.blind ? [] : item.suggestion || [], item.blind ? null : item.span_confidences);
  else $("item-text").textContent = item.text;
  root.dataset.blind = item.blind ? "true" : "false";
  $("machine").hidden = item.blind;
  $("blind").hidden = !item.blind;
  $("suggestion").textContent = item.suggestion === null ? "none" : named(item.suggestion, item.text);
  $("confidence").textContent = item.confidence === null ? "" : `confidence ${percent(item.confidence)}`;
  $("confidence-bar").style.width = `${Math.round((item.confidence || 0) * 100)}%`;
  $("reasons").textContent = item.reasons.length ? item.reasons.join(", ").replaceAll("_", " ") : "–";
  $("explanation").textContent = item.priority_explanation;
  for (const button of document.querySelectorAll("button.label")) {
    const suggested = multi ? (item.suggestion || []).includes(button.dataset.label) : button.dataset.label === item.suggestion;
    button.classList.toggle("suggested", suggested);
  }
  if (multi) {
    chosen = new Set(item.blind ? [] : item.suggestion || []);
    showChosen();
  }
}

function toggle(label) {
  if (!current) return;
  if (chosen.has(label)) chosen.delete(label);
  else chosen.add(label);
  showChosen();
}

async function refreshProgress() {
  const progress = await api("/review/progress");
  const counts = progress.task.counts;
  const done = (counts.accepted || 0) + (counts.resolved || 0);
  $("progress").textContent =
    `You: ${progress.reviewed} answered · Task: ${done} of ${progress.task.items} labeled, ` +
    `${progress.task.waiting} waiting for review, `;
  const disputed = `${progress.task.adjudication} to adjudicate`;
  if (root.dataset.lead === "true") {
    const link = document.createElement("a");
    link.id = "adjudication-link";
    link.href = `/ui/tasks/${encodeURIComponent(task)}/adjudication`;
    link.textContent = disputed;
    $("progress").append(link);
  } else {
    $("progress").append(disputed);
  }
  root.dataset.reviewed = String(progress.reviewed);
}

function stat(list, term, value) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  list.append(dt, dd);
}

async function refreshAgreement() {
  const report = await api("/review/agreement");
  const list = $("agreement");
  list.replaceChildren();
  const alpha = report.krippendorff_alpha;
  stat(list, "Krippendorff's α", alpha === null ? "not enough overlap yet" : alpha.toFixed(2));
  stat(list, "Items with several answers", String(report.items_with_several_votes));
  for (const reviewer of report.reviewers) {
    const gold = reviewer.gold ? `${percent(reviewer.gold.accuracy)} of ${reviewer.gold.items}` : "–";
    const audit = reviewer.audit ? `${percent(reviewer.audit.accuracy)} of ${reviewer.audit.items}` : "–";
    stat(list, reviewer.reviewer, `${reviewer.votes} answers · gold ${gold} · audit ${audit}`);
  }
  for (const pair of report.pairs) {
    const kappa = pair.kappa === null ? "–" : pair.kappa.toFixed(2);
    stat(list, `κ ${pair.first} / ${pair.second}`, `${kappa} on ${pair.items} items`);
  }
}

async function loadNext() {
  show(await api("/review/next", "POST"));
  await refreshProgress();
}

async function answer(label) {
  if (!current || (!label && !Array.isArray(label))) return;
  const result = await api(`/review/${current.item_id}/resolve?next=true`, "POST", { label });
  answered += 1;
  const notes = { final: "saved", waiting: "saved; waiting for another reviewer", adjudication: "sent to a lead for adjudication" };
  say(`#${result.item_id} ${named(result.label, current.text)}: ${notes[result.status]}`);
  show(result.next_item);
  await refreshProgress();
  if (answered % 10 === 0) await refreshAgreement();
}

async function skip() {
  if (!current) return;
  await api(`/review/${current.item_id}/skip`, "POST");
  say(`#${current.item_id} skipped`);
  await loadNext();
}

async function undo() {
  const item = await api("/review/undo", "POST");
  answered -= 1;
  say(`#${item.item_id}: your answer was undone`);
  show(item);
  await refreshProgress();
}

// One action at a time: keys pressed while a request is in flight are dropped, never queued behind it.
async function act(action) {
  if (busy) return;
  busy = true;
  root.dataset.busy = "true";
  try {
    await action();
  } catch (error) {
    say(error instanceof ProblemError ? error.message : `network error: ${error.message}`, true);
  } finally {
    busy = false;
    root.dataset.busy = "false";
  }
}

// A spans task's editing keys; true when the key was one of them.
function editSpans(event, key) {
  if (!current) return false;
  if (/^[1-9]$/.test(key) && Number(key) <= labels.length) {
    event.preventDefault();
    say(editor.apply(labels[Number(key) - 1]));
  } else if (key === "enter") {
    event.preventDefault();
    act(() => answer(editor.value()));
  } else if (key === "delete" || key === "backspace") {
    event.preventDefault();
    say(editor.remove() || "focus a span with Tab first");
  } else if (key === "tab") {
    event.preventDefault();
    if (!editor.cycle(!event.shiftKey)) say("no span to focus: select text and press a label's key to add one");
  } else if (key === "arrowright" || key === "arrowleft") {
    event.preventDefault();
    editor.move(key === "arrowright", event.shiftKey);
  } else {
    return false;
  }
  return true;
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.target.closest("input, textarea, select")) return;
  const key = event.key.toLowerCase();
  if (spans && editSpans(event, key)) return;
  if (/^[1-9]$/.test(key) && Number(key) <= labels.length) {
    event.preventDefault();
    if (multi) toggle(labels[Number(key) - 1]);
    else act(() => answer(labels[Number(key) - 1]));
  } else if (key === "enter" && multi) {
    event.preventDefault();
    act(() => answer(labels.filter((label) => chosen.has(label))));
  } else if (key === "enter") {
    event.preventDefault();
    if (current && current.blind) {
      say("Blind review: there is no suggestion to accept; answer with a number key.");
      return;
    }
    act(() => answer(current && current.suggestion));
  } else if (key === "s") {
    event.preventDefault();
    act(skip);
  } else if (key === "z") {
    event.preventDefault();
    act(undo);
  } else if (key === "g") {
    event.preventDefault();
    $("guidelines").open = !$("guidelines").open;
  }
});

// A click on a label button must not take away the text selection it is about to label.
$("buttons").addEventListener("mousedown", (event) => {
  if (spans) event.preventDefault();
});

$("buttons").addEventListener("click", (event) => {
  const button = event.target.closest("button.label");
  if (button && spans) say(editor.apply(button.dataset.label));
  else if (button && multi) toggle(button.dataset.label);
  else if (button) act(() => answer(button.dataset.label));
});

act(async () => {
  await loadNext();
  await refreshAgreement();
});
