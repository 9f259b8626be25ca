// reconlab comparison viewer: offline, no dependencies. Data: <script id="viewer-data">.
// Keys: <- / -> image, Up / Down study, 1-9 pick A, Shift+1-9 pick B, T toggle A/B,
// S slider mode, E |error| view, [ and ] move the slider.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("viewer-data").textContent);
  const root = document.getElementById("viewer");
  const $ = (sel) => root.querySelector(sel);
  const state = { g: 0, i: 0, a: 1, b: 0, mode: "slider", solo: "a", error: false, split: 50 };
  const errorCache = {};

  function group() { return data.groups[state.g]; }
  function image() { return group().images[state.i]; }
  function uri(id) { return data.assets[id]; }
  function metric(t) {
    const parts = [];
    if (t.psnr !== null) parts.push("PSNR " + t.psnr.toFixed(2) + " dB");
    if (t.bpp !== null) parts.push(t.bpp.toFixed(3) + " bpp");
    if (t.note) parts.push(t.note);
    return parts.join(" · ") || "reference";
  }

  function loadImage(src) {
    return new Promise((resolve, reject) => {
      const im = new Image();
      im.onload = () => resolve(im);
      im.onerror = reject;
      im.src = src;
    });
  }

  // |tile - reference| per pixel (mean over RGB), amplified x4, as a grey image.
  async function errorUri(t) {
    if (t.error) return uri(t.error);
    if (!t.ref) return uri(t.img);
    const key = t.img + "|" + t.ref;
    if (errorCache[key]) return errorCache[key];
    const [a, r] = await Promise.all([loadImage(uri(t.img)), loadImage(uri(t.ref))]);
    const w = a.naturalWidth, h = a.naturalHeight;
    const canvas = document.createElement("canvas");
    canvas.width = w; canvas.height = h;
    const c = canvas.getContext("2d");
    c.drawImage(r, 0, 0, w, h);
    const ref = c.getImageData(0, 0, w, h).data;
    c.drawImage(a, 0, 0, w, h);
    const out = c.getImageData(0, 0, w, h);
    const px = out.data;
    for (let k = 0; k < px.length; k += 4) {
      const d = (Math.abs(px[k] - ref[k]) + Math.abs(px[k + 1] - ref[k + 1]) + Math.abs(px[k + 2] - ref[k + 2])) / 3;
      const v = Math.min(255, d * 4);
      px[k] = v; px[k + 1] = v; px[k + 2] = v; px[k + 3] = 255;
    }
    c.putImageData(out, 0, 0);
    errorCache[key] = canvas.toDataURL("image/png");
    return errorCache[key];
  }

  async function srcOf(t) { return state.error ? errorUri(t) : uri(t.img); }

  function renderSelectors() {
    const gs = $("#viewer-group");
    gs.innerHTML = "";
    data.groups.forEach((g, k) => gs.add(new Option(g.title, k)));
    gs.value = state.g;
    const is = $("#viewer-image");
    is.innerHTML = "";
    group().images.forEach((im, k) => is.add(new Option((k + 1) + ". " + im.name, k)));
    is.value = state.i;
  }

  async function renderTiles() {
    const box = $("#viewer-tiles");
    box.innerHTML = "";
    const tiles = image().tiles;
    for (let k = 0; k < tiles.length; k++) {
      const t = tiles[k];
      const div = document.createElement("div");
      div.className = "tile" + (k === state.a ? " a" : "") + (k === state.b ? " b" : "");
      div.dataset.index = k;
      div.title = "click: show as A; shift+click: show as B";
      const img = document.createElement("img");
      img.alt = t.label;
      img.src = await srcOf(t);
      const label = document.createElement("div");
      label.className = "label";
      label.textContent = (k < 9 ? (k + 1) + ". " : "") + t.label + (k === state.a ? "  [A]" : "") + (k === state.b ? "  [B]" : "");
      const m = document.createElement("div");
      m.className = "metric";
      m.textContent = metric(t);
      div.append(img, label, m);
      div.addEventListener("click", (ev) => pick(k, ev.shiftKey ? "b" : "a"));
      box.append(div);
    }
  }

  async function renderStage() {
    const tiles = image().tiles;
    const ta = tiles[state.a], tb = tiles[state.b];
    $("#viewer-a").src = await srcOf(ta);
    $("#viewer-b").src = await srcOf(tb);
    $("#viewer-a").alt = "A: " + ta.label;
    $("#viewer-b").alt = "B: " + tb.label;
    let cut = state.split;
    if (state.mode === "toggle") cut = state.solo === "a" ? 0 : 100;
    $("#viewer-a").style.clipPath = "inset(0 0 0 " + cut + "%)";
    $("#viewer-divider").style.left = cut + "%";
    $("#viewer-divider").style.display = state.mode === "slider" ? "block" : "none";
    $("#viewer-slider").value = state.split;
    $("#viewer-slider").disabled = state.mode !== "slider";
    $("#viewer-mode").textContent = state.mode === "slider"
      ? "slider: B on the left, A on the right"
      : "toggle: showing " + (state.solo === "a" ? "A" : "B") + " (press T)";
    $("#viewer-legend").textContent = "A: " + ta.label + " — " + metric(ta) + "  |  B: " + tb.label + " — " + metric(tb);
    $("#viewer-error").checked = state.error;
    root.dataset.shown = state.mode === "toggle" ? state.solo : "split:" + state.split;
  }

  async function render() {
    renderSelectors();
    await renderTiles();
    await renderStage();
    root.dataset.ready = "1";
  }

  function pick(k, which) {
    const n = image().tiles.length;
    if (k >= n) return;
    state[which] = k;
    render();
  }

  function clampIndices() {
    const n = image().tiles.length;
    if (state.a >= n) state.a = Math.min(1, n - 1);
    if (state.b >= n) state.b = 0;
  }

  function goImage(delta) {
    const n = group().images.length;
    state.i = (state.i + delta + n) % n;
    clampIndices();
    render();
  }

  function goGroup(delta) {
    const n = data.groups.length;
    state.g = (state.g + delta + n) % n;
    state.i = 0;
    state.a = 1; state.b = 0;
    clampIndices();
    render();
  }

  function toggle() {
    if (state.mode !== "toggle") { state.mode = "toggle"; state.solo = "a"; }
    else state.solo = state.solo === "a" ? "b" : "a";
    renderStage();
  }

  $("#viewer-group").addEventListener("change", (e) => { state.g = +e.target.value; state.i = 0; state.a = 1; state.b = 0; clampIndices(); render(); });
  $("#viewer-image").addEventListener("change", (e) => { state.i = +e.target.value; clampIndices(); render(); });
  $("#viewer-prev").addEventListener("click", () => goImage(-1));
  $("#viewer-next").addEventListener("click", () => goImage(1));
  $("#viewer-toggle").addEventListener("click", toggle);
  $("#viewer-slider-mode").addEventListener("click", () => { state.mode = "slider"; renderStage(); });
  $("#viewer-slider").addEventListener("input", (e) => { state.mode = "slider"; state.split = +e.target.value; renderStage(); });
  $("#viewer-error").addEventListener("change", (e) => { state.error = e.target.checked; render(); });

  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" && e.target.type !== "checkbox" && e.target.type !== "range") return;
    if (e.target.tagName === "SELECT") return;
    const digit = e.code && e.code.startsWith("Digit") ? +e.code.slice(5) : NaN;
    if (e.key === "ArrowRight") goImage(1);
    else if (e.key === "ArrowLeft") goImage(-1);
    else if (e.key === "ArrowDown") goGroup(1);
    else if (e.key === "ArrowUp") goGroup(-1);
    else if (digit >= 1 && digit <= 9) pick(digit - 1, e.shiftKey ? "b" : "a");
    else if (e.key === "t" || e.key === "T") toggle();
    else if (e.key === "s" || e.key === "S") { state.mode = "slider"; renderStage(); }
    else if (e.key === "e" || e.key === "E") { state.error = !state.error; render(); }
    else if (e.key === "[") { state.mode = "slider"; state.split = Math.max(0, state.split - 10); renderStage(); }
    else if (e.key === "]") { state.mode = "slider"; state.split = Math.min(100, state.split + 10); renderStage(); }
    else return;
    e.preventDefault();
  });

  clampIndices();
  render();
})();
