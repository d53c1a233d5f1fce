// The document review screen: text selected in the document fills the "add a mask" form with the
// selection and its place in the original, so the publisher masks that very stretch.
const text = document.getElementById("review-text");
const form = document.getElementById("add-mask");

function offsetOf(node, offset) {
  const holder = node.nodeType === Node.TEXT_NODE ? node.parentElement : node;
  const segment = holder && holder.closest("[data-start]");
  if (!segment || !text.contains(segment)) return null;
  return Number(segment.dataset.start) + (node.nodeType === Node.TEXT_NODE ? offset : 0);
}

function takeSelection() {
  const selection = window.getSelection();
  if (!selection || selection.isCollapsed || selection.rangeCount === 0) return;
  const range = selection.getRangeAt(0);
  const start = offsetOf(range.startContainer, range.startOffset);
  const end = offsetOf(range.endContainer, range.endOffset);
  const chosen = selection.toString();
  if (start === null || end === null || end <= start || !chosen.trim()) return;
  form.elements.text.value = chosen.trim();
  const lead = chosen.length - chosen.trimStart().length;
  const trail = chosen.length - chosen.trimEnd().length;
  form.elements.start.value = String(start + lead);
  form.elements.end.value = String(end - trail);
}

if (text && form) {
  text.addEventListener("mouseup", takeSelection);
  text.addEventListener("keyup", takeSelection);
  // A typed string masks every occurrence: the selection's place no longer applies.
  form.elements.text.addEventListener("input", () => {
    form.elements.start.value = "";
    form.elements.end.value = "";
  });
}
