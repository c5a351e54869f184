// envfarm view: the little the pages do in the browser (no library, nothing fetched).
"use strict";

// "unfold all reasoning" buttons
document.querySelectorAll("[data-toggle-details]").forEach((btn) => {
  btn.addEventListener("click", () => {
    const scope = document.querySelector(btn.dataset.toggleDetails);
    const all = scope.querySelectorAll("details.reasoning");
    const open = ![...all].every((d) => d.open);
    all.forEach((d) => { d.open = open; });
    btn.textContent = open ? "fold all reasoning" : "unfold all reasoning";
  });
});

// "[" and "]" step to the previous / next episode (outside text fields).
document.addEventListener("keydown", (ev) => {
  if (ev.target.closest("input, select, textarea") || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const link = document.getElementById(ev.key === "[" ? "prev-episode" : ev.key === "]" ? "next-episode" : "");
  if (link) link.click();
});

// Token page: hover shows the values, toggles paint a heat map.
(function tokens() {
  const box = document.getElementById("tokens");
  const raw = document.getElementById("token-data");
  if (!box || !raw) return;
  const data = JSON.parse(raw.textContent);
  const start = Number(box.dataset.start || 0);
  const tip = document.getElementById("tip");
  const fmt = (v) => (v === null || v === undefined ? "—" : v.toFixed(4));
  const spans = box.querySelectorAll(":scope > span");
  for (let k = 0; k < spans.length; k++) spans[k].tokenIndex = k;  // position = token index
  box.addEventListener("mouseover", (ev) => {
    const t = ev.target.closest("#tokens > span");
    if (!t) return;
    const k = t.tokenIndex;
    const lines = [`#${start + k}  id ${t.dataset.id}  mask ${t.classList.contains("m1") ? 1 : 0}`,
      `logprob ${fmt(data.lp[k])}` + (data.lp[k] != null ? `  p=${Math.exp(data.lp[k]).toFixed(3)}` : "")];
    if (data.tlp) lines.push(`teacher ${fmt(data.tlp[k])}  advantage ${fmt(data.adv[k])}`);
    tip.textContent = lines.join("\n");
    tip.hidden = false;
  });
  box.addEventListener("mousemove", (ev) => {
    tip.style.left = `${ev.clientX + 14}px`;
    tip.style.top = `${ev.clientY + 14}px`;
  });
  box.addEventListener("mouseleave", () => { tip.hidden = true; });

  function paint(values, colour) {
    box.classList.toggle("heat", !!values);
    for (let k = 0; k < spans.length; k++) {
      const v = values ? values[k] : null;
      spans[k].style.background = values && v !== null && v !== undefined ? colour(v) : "";
    }
  }
  // logprob: red where the model was unsure (p small), clear where it was sure
  const lpColour = (v) => `hsla(${Math.round(120 * Math.exp(v))}, 85%, 55%, ${0.15 + 0.6 * (1 - Math.exp(v))})`;
  // advantage: green where the teacher liked the token more than the student, red less
  const advColour = (v) => (v >= 0 ? `rgba(26,127,55,${Math.min(1, v / 2)})` : `rgba(207,34,46,${Math.min(1, -v / 2)})`);
  const heat = document.getElementById("heat");
  const heatAdv = document.getElementById("heat-adv");
  if (heat) heat.addEventListener("change", () => {
    if (heatAdv) heatAdv.checked = false;
    paint(heat.checked ? data.lp : null, lpColour);
  });
  if (heatAdv) heatAdv.addEventListener("change", () => {
    heat.checked = false;
    paint(heatAdv.checked ? data.adv : null, advColour);
  });
})();
