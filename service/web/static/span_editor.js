// The answer of a spans task on the review page: the item's text with its spans drawn on it, edited from the
// keyboard or the mouse. A span is added by selecting text (mouse, or shift+arrows a word at a time) and pressing a
// label's key; Tab (shift+Tab) focuses the next (previous) span, a label's key relabels it, Delete or Backspace removes it. Spans never overlap.
// The service counts offsets in code points and the page in UTF-16 units: they are converted at the edges, so a
// text with emoji keeps its offsets.
"use strict";

class SpanEditor {
  constructor(container, labels) {
    this.container = container;
    this.labels = labels;
    this.text = "";
    this.spans = [];
    this.confidences = new Map();
    this.units = [0];
  }

  // spans: [{start, end, label}] in code points; confidences: the machine's per-span probabilities, or null.
  load(text, spans, confidences) {
    this.text = text;
    this.units = [0];
    for (const char of text) this.units.push(this.units[this.units.length - 1] + char.length);
    this.spans = spans.map((span) => ({ start: this.units[span.start], end: this.units[span.end], label: span.label }));
    this.confidences = new Map();
    if (confidences && confidences.length === spans.length) {
      this.spans.forEach((span, i) => this.confidences.set(this.key(span), confidences[i]));
    }
    this.caret = 0;
    this.focusWord = null;
    this.render();
  }

  key(span) {
    return `${span.start}:${span.end}:${span.label}`;
  }

  // The answer as the service reads it: code-point offsets, in text order.
  value() {
    const point = (unit) => this.units.indexOf(unit);
    return this.spans
      .slice()
      .sort((a, b) => a.start - b.start)
      .map((span) => ({ start: point(span.start), end: point(span.end), label: span.label }));
  }

  render(focusKey = null) {
    const parts = [];
    let at = 0;
    for (const span of this.spans.slice().sort((a, b) => a.start - b.start)) {
      if (span.start > at) parts.push(document.createTextNode(this.text.slice(at, span.start)));
      const mark = document.createElement("mark");
      mark.className = `span l${this.labels.indexOf(span.label) % 9}`;
      mark.tabIndex = 0;
      mark.dataset.start = String(span.start);
      mark.dataset.end = String(span.end);
      mark.dataset.label = span.label;
      const confidence = this.confidences.get(this.key(span));
      mark.title = confidence === undefined ? span.label : `${span.label} · ${Math.round(confidence * 100)}%`;
      mark.append(document.createTextNode(this.text.slice(span.start, span.end)));
      const tag = document.createElement("span");
      tag.className = "span-label";
      tag.setAttribute("aria-hidden", "true");
      tag.textContent = span.label;
      mark.append(tag);
      parts.push(mark);
      at = span.end;
    }
    if (at < this.text.length) parts.push(document.createTextNode(this.text.slice(at)));
    this.container.replaceChildren(...parts);
    this.container.dataset.spans = JSON.stringify(this.value());
    if (focusKey) {
      const mark = [...this.container.querySelectorAll("mark.span")].find((m) => this.key(this.of(m)) === focusKey);
      if (mark) mark.focus();
    }
  }

  of(mark) {
    return { start: Number(mark.dataset.start), end: Number(mark.dataset.end), label: mark.dataset.label };
  }

  focused() {
    const mark = document.activeElement && document.activeElement.closest && document.activeElement.closest("mark.span");
    return mark && this.container.contains(mark) ? this.of(mark) : null;
  }

  // The selected stretch of the text in UTF-16 units, whitespace trimmed; null when nothing is selected in it.
  selection() {
    const selected = window.getSelection();
    if (!selected || selected.rangeCount === 0 || selected.isCollapsed) return null;
    const range = selected.getRangeAt(0);
    if (!this.container.contains(range.startContainer) || !this.container.contains(range.endContainer)) return null;
    let start = this.offset(range.startContainer, range.startOffset);
    let end = this.offset(range.endContainer, range.endOffset);
    while (start < end && /\s/.test(this.text[start])) start += 1;
    while (end > start && /\s/.test(this.text[end - 1])) end -= 1;
    return end > start ? { start, end } : null;
  }

  // The text offset of a DOM position inside the container: the lengths of the text before it (label tags aside).
  offset(node, within) {
    let total = 0;
    const walker = document.createTreeWalker(this.container, NodeFilter.SHOW_TEXT);
    for (let current = walker.nextNode(); current; current = walker.nextNode()) {
      if (current.parentElement.classList.contains("span-label")) {
        if (current === node) return total;
        continue;
      }
      if (current === node) return total + within;
      total += current.length;
    }
    if (node === this.container) return within === 0 ? 0 : this.text.length;
    return total;
  }

  // Label the selection, or relabel the focused span. Returns what happened, for the status line.
  apply(label) {
    const chosen = this.selection();
    if (chosen) {
      const clash = this.spans.find((span) => span.start < chosen.end && chosen.start < span.end);
      if (clash) return `"${this.text.slice(chosen.start, chosen.end)}" overlaps "${this.text.slice(clash.start, clash.end)}"; remove that span first`;
      const span = { ...chosen, label };
      this.spans.push(span);
      window.getSelection().removeAllRanges();
      this.caret = chosen.end;
      this.focusWord = null;
      this.render(this.key(span));
      return `added "${this.text.slice(span.start, span.end)}" as ${label}`;
    }
    const focused = this.focused();
    if (focused) {
      const span = this.spans.find((s) => this.key(s) === this.key(focused));
      span.label = label;
      this.render(this.key(span));
      return `"${this.text.slice(span.start, span.end)}" is now ${label}`;
    }
    return "select text first (mouse, or shift+arrows), or focus a span with Tab";
  }

  // Focus the next (or previous) span, round the text.
  cycle(forward) {
    const marks = [...this.container.querySelectorAll("mark.span")];
    if (!marks.length) return false;
    const at = marks.indexOf(document.activeElement);
    const next = at < 0 ? (forward ? 0 : marks.length - 1) : (at + (forward ? 1 : -1) + marks.length) % marks.length;
    window.getSelection().removeAllRanges();
    marks[next].focus();
    return true;
  }

  remove() {
    const focused = this.focused();
    if (!focused) return null;
    const index = this.spans.findIndex((s) => this.key(s) === this.key(focused));
    const [gone] = this.spans.splice(index, 1);
    const next = this.spans.slice().sort((a, b) => a.start - b.start).find((s) => s.start >= gone.end);
    this.render(next ? this.key(next) : null);
    return `removed "${this.text.slice(gone.start, gone.end)}"`;
  }

  // Arrows select the next or previous word; shift+arrows stretch the selection a word at a time from where it
  // began (a mouse selection too), so a label's key can then label it.
  move(forward, extend) {
    const words = [...this.text.matchAll(/[\p{L}\p{N}_'’@#-]+|[^\s]/gu)].map((m) => [m.index, m.index + m[0].length]);
    if (!words.length) return;
    const selected = this.selection();
    const ours = selected && this.moved && selected.start === this.moved.start && selected.end === this.moved.end;
    if (selected && !ours) {
      this.anchorWord = words.findIndex(([, end]) => end > selected.start);
      this.focusWord = words.findLastIndex(([start]) => start < selected.end);
    } else if (this.focusWord === undefined || this.focusWord === null) {
      const after = words.findIndex(([start]) => start >= this.caret);
      const next = after < 0 ? words.length : after;
      this.anchorWord = this.focusWord = forward ? next - 1 : next;
    }
    const last = words.length - 1;
    this.focusWord = Math.min(last, Math.max(0, this.focusWord + (forward ? 1 : -1)));
    if (!extend) this.anchorWord = this.focusWord;
    const low = Math.min(this.anchorWord, this.focusWord);
    const high = Math.max(this.anchorWord, this.focusWord);
    this.select(words[low][0], words[high][1]);
    this.moved = this.selection();
  }

  // Select text offsets [start, end) in the page, as a mouse would.
  select(start, end) {
    const at = (offset) => {
      const walker = document.createTreeWalker(this.container, NodeFilter.SHOW_TEXT);
      let total = 0;
      let last = null;
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (node.parentElement.classList.contains("span-label")) continue;
        if (offset <= total + node.length) return [node, offset - total];
        total += node.length;
        last = node;
      }
      return [last, last ? last.length : 0];
    };
    const [startNode, startOffset] = at(start);
    const [endNode, endOffset] = at(end);
    if (startNode && endNode) window.getSelection().setBaseAndExtent(startNode, startOffset, endNode, endOffset);
  }
}
