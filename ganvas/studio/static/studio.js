// ganvas studio: the page. Label maps are painted into an id buffer (never into the canvas, which would
// blend colours at edges) and drawn from it; every edit is a step of undo/redo that keeps its rendered
// output; the newest render request wins.

const $ = (id) => document.getElementById(id);
const token = decodeURIComponent(location.hash.slice(1));
const channel = Math.random().toString(36).slice(2);
const HISTORY_BYTES = 256 * 2 ** 20;

const S = {
  models: [], info: null, key: null, mode: null,
  width: 0, height: 0,
  ids: null, inst: null, styles: {}, sketch: null, photo: null, photoImage: null,
  hints: [], selected: -1, patch: 3, colour: [200, 50, 50], recent: [],
  history: [], future: [], output: null, pending: null, seq: 0,
  tool: "brush", cls: 0, size: 8, issued: new Set(), objects: [], stamp: -1, picked: -1, examples: [],
  version: 0, shownVersion: -1, tickets: { model: 0, styles: 0, suggest: 0 },
  strokeEnd: 0, drag: null,
};
// What the tests and the benchmark read: the latency of each displayed render, stroke end to shown.
window.ganvasStudio = { latencies: [], state: S };

// ----------------------------------------------------------------------------------------- server

async function api(path, body, signal) {
  const init = { headers: { "X-Ganvas-Token": token }, signal };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data;
  try { data = await response.json(); } catch { data = { error: `the studio answered ${response.status}` }; }
  if (!response.ok || data.error) throw new Error(data.error || `the studio answered ${response.status}`);
  return data;
}

function showError(err) {
  if (err && err.name === "AbortError") return;
  const box = $("error");
  box.textContent = String(err && err.message ? err.message : err);
  box.hidden = false;
}

function clearError() { $("error").hidden = true; }
function say(text) { $("message").textContent = text; }

// -------------------------------------------------------------------------------------- encoding

function b64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function unb64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

const int32Bytes = (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const int32From = (bytes) => new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));

function readFile(file, asText = false) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
    if (asText) reader.readAsText(file); else reader.readAsDataURL(file);
  });
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the browser cannot show this image; upload a PNG, JPEG or WebP file"));
    image.src = url;
  });
}

// A grayscale 8-bit PNG of the id map (browsers' canvases only write RGBA).
const CRC = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

async function grayPng(ids, width, height) {
  const rows = new Uint8Array((width + 1) * height);
  for (let y = 0; y < height; y++) rows.set(ids.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const zipped = new Uint8Array(await new Response(new Blob([rows]).stream().pipeThrough(new CompressionStream("deflate"))).arrayBuffer());
  const chunk = (type, data) => {
    const out = new Uint8Array(12 + data.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, data.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(data, 8);
    view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  };
  const header = new Uint8Array(13);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, width); hv.setUint32(4, height); header[8] = 8; header[9] = 0;
  const parts = [new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", header), chunk("IDAT", zipped), chunk("IEND", new Uint8Array())];
  return new Blob(parts, { type: "image/png" });
}

// ----------------------------------------------------------------------------------------- drawing

function colourOf(id) {
  const c = S.info.classes_list.find((k) => k.id === id);
  return c ? c.color : [0, 0, 0];
}

function palette() {
  const table = new Uint8Array(256 * 3);
  for (const c of S.info.classes_list) table.set(c.color, c.id * 3);
  return table;
}

function scaleFor(width, height) {
  return Math.min(6, 448 / Math.max(width, height));
}

function sizeStage(width, height) {
  const z = scaleFor(width, height);
  const w = Math.round(width * z), h = Math.round(height * z);
  for (const el of [$("input"), $("overlay"), $("output"), $("before")]) {
    el.style.width = `${w}px`;
    el.style.height = `${h}px`;
  }
  $("overlay").width = w;
  $("overlay").height = h;
}

function drawInput() {
  const canvas = $("input");
  if (S.mode === "labels" || S.mode === "sketch") {
    canvas.width = S.width;
    canvas.height = S.height;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(S.width, S.height);
    const px = image.data;
    if (S.mode === "labels") {
      const table = palette();
      for (let i = 0; i < S.ids.length; i++) {
        const c = S.ids[i] * 3;
        px[4 * i] = table[c]; px[4 * i + 1] = table[c + 1]; px[4 * i + 2] = table[c + 2]; px[4 * i + 3] = 255;
      }
    } else {
      for (let i = 0; i < S.sketch.length; i++) {
        const v = S.sketch[i] ? 0 : 255;
        px[4 * i] = v; px[4 * i + 1] = v; px[4 * i + 2] = v; px[4 * i + 3] = 255;
      }
    }
    ctx.putImageData(image, 0, 0);
  } else if (S.photoImage) {
    canvas.width = S.width;
    canvas.height = S.height;
    const ctx = canvas.getContext("2d");
    ctx.filter = S.mode === "colourise" ? "grayscale(1)" : "none";
    ctx.drawImage(S.photoImage, 0, 0);
    ctx.filter = "none";
  }
  drawOverlay();
}

function drawOverlay(preview) {
  const overlay = $("overlay");
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  const z = overlay.width / Math.max(1, S.width);
  if (S.mode === "colourise") {
    S.hints.forEach((h, i) => {
      const half = (h.patch * z) / 2;
      ctx.fillStyle = `rgb(${h.rgb.join(",")})`;
      ctx.fillRect((h.x + 0.5) * z - half, (h.y + 0.5) * z - half, 2 * half, 2 * half);
      ctx.lineWidth = i === S.selected ? 3 : 1.5;
      ctx.strokeStyle = i === S.selected ? "#fff" : "#000";
      ctx.strokeRect((h.x + 0.5) * z - half - 2, (h.y + 0.5) * z - half - 2, 2 * half + 4, 2 * half + 4);
    });
  }
  if (preview) {
    ctx.strokeStyle = "#fff";
    ctx.setLineDash([4, 3]);
    ctx.lineWidth = 1.5;
    ctx.strokeRect(preview.x0 * z, preview.y0 * z, (preview.x1 - preview.x0) * z, (preview.y1 - preview.y0) * z);
    ctx.setLineDash([]);
  }
  if (S.mode === "labels" && S.picked >= 0) {
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 2;
    const [y0, x0, y1, x1] = boxOf(S.picked);
    ctx.strokeRect(x0 * z - 1, y0 * z - 1, (x1 - x0) * z + 2, (y1 - y0) * z + 2);
  }
}

function stamp(buffer, x, y, value, radius) {
  const r2 = radius * radius;
  const lo = Math.ceil(radius);
  for (let dy = -lo; dy <= lo; dy++) {
    const yy = y + dy;
    if (yy < 0 || yy >= S.height) continue;
    for (let dx = -lo; dx <= lo; dx++) {
      const xx = x + dx;
      if (xx < 0 || xx >= S.width || dx * dx + dy * dy > r2) continue;
      const i = yy * S.width + xx;
      if (Array.isArray(buffer)) {
        buffer[0][i] = value[0];
        buffer[1][i] = value[1];
      } else buffer[i] = value;
    }
  }
}

function line(x0, y0, x1, y1, draw) {
  const steps = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
  for (let s = 0; s <= steps; s++) draw(Math.round(x0 + ((x1 - x0) * s) / steps), Math.round(y0 + ((y1 - y0) * s) / steps));
}

function brushRadius() { return Math.max(0, (S.size - 1) / 2); }

function paintAt(x, y) {
  const r = brushRadius();
  if (S.mode === "labels") {
    const cls = S.tool === "eraser" ? S.info.classes_list[0].id : S.cls;
    stamp([S.ids, S.inst], x, y, [cls, cls], r);
  } else {
    stamp(S.sketch, x, y, S.tool === "eraser" ? 0 : 1, r);
  }
}

function fill(x, y, cls) {
  const w = S.width, h = S.height, start = y * w + x;
  const id = S.ids[start], ins = S.inst[start];
  if (id === cls && ins === cls) return false;
  const stack = [start];
  const seen = new Uint8Array(w * h);
  seen[start] = 1;
  while (stack.length) {
    const i = stack.pop();
    S.ids[i] = cls;
    S.inst[i] = cls;
    const px = i % w, py = (i - px) / w;
    for (const [nx, ny] of [[px - 1, py], [px + 1, py], [px, py - 1], [px, py + 1]]) {
      if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
      const j = ny * w + nx;
      if (!seen[j] && S.ids[j] === id && S.inst[j] === ins) { seen[j] = 1; stack.push(j); }
    }
  }
  return true;
}

function newId(cls) {
  let k = 0;
  for (const v of S.inst) if (v >= 1000 && Math.floor(v / 1000) === cls) k = Math.max(k, (v % 1000) + 1);
  for (const v of S.issued) if (v >= 1000 && Math.floor(v / 1000) === cls) k = Math.max(k, (v % 1000) + 1);
  const id = cls * 1000 + k;
  S.issued.add(id);
  return id;
}

function boxOf(instance) {
  let y0 = S.height, x0 = S.width, y1 = 0, x1 = 0;
  for (let i = 0; i < S.inst.length; i++) {
    if (S.inst[i] !== instance) continue;
    const x = i % S.width, y = (i - x) / S.width;
    y0 = Math.min(y0, y); x0 = Math.min(x0, x); y1 = Math.max(y1, y + 1); x1 = Math.max(x1, x + 1);
  }
  return [y0, x0, y1, x1];
}

// --------------------------------------------------------------------------------------- history

function snapshot() {
  if (S.mode === "labels") return { ids: S.ids.slice(), inst: S.inst.slice(), styles: { ...S.styles }, width: S.width, height: S.height };
  if (S.mode === "sketch") return { sketch: S.sketch.slice(), width: S.width, height: S.height };
  const photo = { photo: S.photo, photoImage: S.photoImage, width: S.width, height: S.height };
  if (S.mode === "colourise") return { ...photo, hints: S.hints.map((h) => ({ ...h, rgb: [...h.rgb] })) };
  return photo;
}

function bytesOf(entry) {
  const s = entry.state;
  return (s.ids ? s.ids.length + 4 * s.inst.length : 0) + (s.sketch ? s.sketch.length : 0) + (entry.output ? entry.output.length : 0);
}

function restore(state) {
  if (state.width !== undefined && (state.width !== S.width || state.height !== S.height)) {
    S.width = state.width; S.height = state.height;
    sizeStage(S.width, S.height);
  }
  if (state.ids) { S.ids = state.ids.slice(); S.inst = state.inst.slice(); S.styles = { ...state.styles }; }
  if (state.sketch) S.sketch = state.sketch.slice();
  if (state.photo !== undefined) { S.photo = state.photo; S.photoImage = state.photoImage; }
  if (state.hints) { S.hints = state.hints.map((h) => ({ ...h, rgb: [...h.rgb] })); S.selected = -1; }
}

// The output shown, if it is the current scene's (a render may still be on its way): what undo can show again.
function currentOutput() {
  return S.shownVersion === S.version ? S.output : null;
}

// Keep the scene before an edit (with its output), so that undo shows that output again; the history is
// capped in bytes (large scenes keep fewer steps).
function beginEdit() {
  S.history.push({ state: snapshot(), output: currentOutput() });
  let total = S.history.reduce((sum, entry) => sum + bytesOf(entry), 0);
  while (S.history.length > 1 && (total > HISTORY_BYTES || S.history.length > 200)) total -= bytesOf(S.history.shift());
  S.future = [];
  S.version += 1;
  updateButtons();
}

function step(from, to) {
  if (!from.length) return;
  to.push({ state: snapshot(), output: currentOutput() });
  const entry = from.pop();
  restore(entry.state);
  S.version += 1;
  S.picked = -1;
  $("object-panel").hidden = true;
  drawInput();
  updateButtons();
  if (entry.output) {
    cancelRender();
    S.strokeEnd = performance.now();
    show(entry.output, null, S.version);
  } else render();
}

const undo = () => step(S.history, S.future);
const redo = () => step(S.future, S.history);

function updateButtons() {
  for (const id of ["undo", "hint-undo"]) $(id).disabled = !S.history.length;
  for (const id of ["redo", "hint-redo"]) $(id).disabled = !S.future.length;
  $("hint-count").textContent = String(S.hints.length);
}

// --------------------------------------------------------------------------------------- rendering

function renderBody() {
  const body = { model: S.key, mode: S.mode, channel, seq: S.seq, direction: $("direction").value || undefined };
  if (S.mode === "labels") {
    Object.assign(body, { width: S.width, height: S.height, ids: b64(S.ids), styles: S.styles, seed: 0 });
    if (S.info.instances) body.inst = b64(int32Bytes(S.inst));
  } else if (S.mode === "sketch") {
    body.image = $("input").toDataURL("image/png");
  } else {
    if (!S.photo) return null;
    body.image = S.photo;
    if (S.mode === "colourise") body.hints = S.hints.map(({ x, y, rgb, patch }) => ({ x, y, rgb, patch }));
  }
  return body;
}

function cancelRender() {
  if (S.pending) S.pending.abort();
  S.pending = null;
  document.body.dataset.busy = "0";
  $("busy").hidden = true;
}

async function render() {
  S.seq += 1;
  const version = S.version;
  const body = renderBody();
  if (!body) return;
  cancelRender();
  const controller = new AbortController();
  S.pending = controller;
  const seq = S.seq;
  const busy = setTimeout(() => { if (S.seq === seq) { document.body.dataset.busy = "1"; $("busy").hidden = false; } }, 100);
  try {
    const data = await api("/api/render", body, controller.signal);
    if (data.superseded || seq !== S.seq) return;
    clearError();
    show(data.image, data.ms, version);
    say(data.notes && data.notes.length ? data.notes.join(" ") : "");
  } catch (err) {
    if (seq === S.seq) showError(err);
  } finally {
    clearTimeout(busy);
    if (seq === S.seq) { document.body.dataset.busy = "0"; $("busy").hidden = true; S.pending = null; }
  }
}

function show(url, modelMs, version) {
  const img = $("output");
  const started = S.strokeEnd;
  img.onload = () => {
    const total = performance.now() - started;
    window.ganvasStudio.latencies.push(total);
    $("timing").textContent = modelMs == null ? "(kept from before)" : `${Math.round(total)} ms (model ${Math.round(modelMs)} ms)`;
    document.body.dataset.renders = String(Number(document.body.dataset.renders) + 1);
  };
  S.output = url;
  S.shownVersion = version;
  img.src = url;
  $("before").src = S.mode === "labels" || S.mode === "sketch" ? $("input").toDataURL() : S.photo || "";
}

function edited() {
  S.strokeEnd = performance.now();
  S.version += 1;
  drawInput();
  updateButtons();
  render();
}

// --------------------------------------------------------------------------------------- pointer

function pixel(event) {
  const rect = $("input").getBoundingClientRect();
  const x = Math.floor(((event.clientX - rect.left) / rect.width) * S.width);
  const y = Math.floor(((event.clientY - rect.top) / rect.height) * S.height);
  return [Math.min(S.width - 1, Math.max(0, x)), Math.min(S.height - 1, Math.max(0, y))];
}

function hintAt(x, y) {
  for (let i = S.hints.length - 1; i >= 0; i--) {
    const h = S.hints[i], reach = h.patch / 2 + 2;
    if (Math.abs(h.x - x) <= reach && Math.abs(h.y - y) <= reach) return i;
  }
  return -1;
}

function onDown(event) {
  if (!S.info) return;
  if (event.button !== 0 && !(S.mode === "colourise" && event.button === 2)) return;
  const [x, y] = pixel(event);
  $("input").setPointerCapture(event.pointerId);
  if (S.mode === "colourise") return hintDown(event, x, y);
  if (S.mode !== "labels" && S.mode !== "sketch") return;
  const tool = S.tool;
  if (S.mode === "labels" && tool === "picker") { chooseClass(S.ids[y * S.width + x]); setTool("brush"); return; }
  if (S.mode === "labels" && tool === "object") return pickObject(x, y);
  if (S.mode === "labels" && tool === "stamp") return stampObject(x, y);
  if (S.mode === "labels" && tool === "fill") {
    const before = snapshot();
    if (fill(x, y, S.cls)) { S.history.push({ state: before, output: currentOutput() }); S.future = []; edited(); }
    return;
  }
  beginEdit();
  if (tool === "rect") { S.drag = { x0: x, y0: y, x1: x + 1, y1: y + 1, rect: true }; drawOverlay(S.drag); return; }
  S.drag = { x, y };
  paintAt(x, y);
  drawInput();
}

function onMove(event) {
  if (!S.drag) return;
  const [x, y] = pixel(event);
  if (S.mode === "colourise") return hintMove(x, y);
  if (S.drag.rect) {
    Object.assign(S.drag, { x1: x + 1, y1: y + 1 });
    drawOverlay(normal(S.drag));
    return;
  }
  line(S.drag.x, S.drag.y, x, y, paintAt);
  S.drag.x = x; S.drag.y = y;
  drawInput();
}

function normal(d) {
  return { x0: Math.min(d.x0, d.x1 - 1), y0: Math.min(d.y0, d.y1 - 1), x1: Math.max(d.x0 + 1, d.x1), y1: Math.max(d.y0 + 1, d.y1) };
}

function onUp() {
  if (!S.drag) return;
  const drag = S.drag;
  S.drag = null;
  if (S.mode === "colourise") return hintUp(drag);
  if (drag.rect) {
    const r = normal(drag);
    for (let y = r.y0; y < r.y1; y++) for (let x = r.x0; x < r.x1; x++) { S.ids[y * S.width + x] = S.cls; S.inst[y * S.width + x] = S.cls; }
  }
  edited();
}

// ----------------------------------------------------------------------------- objects and styles

function pickObject(x, y) {
  S.picked = S.inst[y * S.width + x];
  S.pickedAt = [x, y];
  describePicked(S.ids[y * S.width + x]);
  drawOverlay();
  loadStyles();
}

function describePicked(cls) {
  const name = S.info.classes_list.find((c) => c.id === cls)?.name ?? `class ${cls}`;
  $("object-panel").hidden = false;
  $("object-info").textContent = S.picked >= 1000 ? `${name} object ${S.picked}` : `${name} (a region of stuff)`;
}

function relabel() {
  if (S.picked < 0) return;
  const old = S.picked, cls = S.cls;
  beginEdit();
  // An object changes class as a whole (with a new id of that class); a region of stuff only where it was clicked.
  const fresh = old >= 1000 ? newId(cls) : cls;
  if (old >= 1000) {
    for (let i = 0; i < S.inst.length; i++) if (S.inst[i] === old) { S.inst[i] = fresh; S.ids[i] = cls; }
  } else fill(S.pickedAt[0], S.pickedAt[1], cls);
  delete S.styles[old]; // the new class has its own styles
  S.picked = fresh;
  edited();
  describePicked(cls);
  loadStyles();
}

async function loadStyles() {
  const row = $("styles");
  const ticket = ++S.tickets.styles;
  row.replaceChildren();
  if (!S.info.styles || S.picked < 0) return;
  const picked = S.picked;
  try {
    const data = await api("/api/styles", {
      model: S.key, width: S.width, height: S.height, ids: b64(S.ids), inst: b64(int32Bytes(S.inst)),
      styles: S.styles, seed: 0, instance: picked,
    });
    if (ticket !== S.tickets.styles || picked !== S.picked) return; // another object was clicked meanwhile
    row.replaceChildren();
    if (!data.previews.length) row.textContent = "This class has no styles in this run.";
    data.previews.forEach((url, k) => {
      const button = document.createElement("button");
      button.title = `style ${k}`;
      button.dataset.style = String(k);
      button.setAttribute("aria-pressed", String(data.chosen === k));
      const img = document.createElement("img");
      img.src = url;
      button.append(img);
      button.onclick = () => chooseStyle(k);
      row.append(button);
    });
  } catch (err) { showError(err); }
}

function chooseStyle(k) {
  if (S.picked < 0) return;
  beginEdit();
  S.styles[S.picked] = k;
  for (const b of $("styles").children) b.setAttribute("aria-pressed", String(Number(b.dataset.style) === k));
  edited();
}

function showObjects(objects) {
  const box = $("objects");
  box.replaceChildren();
  S.stamp = -1;
  S.objects = objects.map((o) => ({ ...o, bits: unb64(o.mask) }));
  S.objects.forEach((o, n) => {
    const button = document.createElement("button");
    button.title = `${S.info.classes_list.find((c) => c.id === o.cls)?.name ?? o.cls} from ${o.from}`;
    button.dataset.object = String(n);
    const canvas = document.createElement("canvas");
    canvas.width = o.width; canvas.height = o.height;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(o.width, o.height);
    const [r, g, b] = colourOf(o.cls);
    o.bits.forEach((v, i) => { if (v) image.data.set([r, g, b, 255], 4 * i); });
    ctx.putImageData(image, 0, 0);
    button.append(canvas);
    button.onclick = () => {
      S.stamp = n;
      for (const c of box.children) c.setAttribute("aria-pressed", String(c === button));
    };
    box.append(button);
  });
}

function stampObject(x, y) {
  const o = S.objects[S.stamp];
  if (!o) { say("Choose an object to stamp first."); return; }
  beginEdit();
  const id = newId(o.cls);
  const top = y - Math.floor(o.height / 2), left = x - Math.floor(o.width / 2);
  for (let r = 0; r < o.height; r++) for (let c = 0; c < o.width; c++) {
    const yy = top + r, xx = left + c;
    if (!o.bits[r * o.width + c] || yy < 0 || xx < 0 || yy >= S.height || xx >= S.width) continue;
    S.ids[yy * S.width + xx] = o.cls;
    S.inst[yy * S.width + xx] = id;
  }
  edited();
}

// ---------------------------------------------------------------------------------- colour hints

function hintDown(event, x, y) {
  if (!S.photo) { say("Upload a photo first."); return; }
  if (event.button === 2) return;
  const found = hintAt(x, y);
  if (found >= 0) {
    // selecting is no edit: the step is kept only if the hint moves
    S.selected = found;
    S.drag = { moved: false, hint: found, before: { state: snapshot(), output: currentOutput() } };
    drawOverlay();
    return;
  }
  beginEdit();
  S.hints.push({ x, y, rgb: [...S.colour], patch: S.patch });
  S.selected = S.hints.length - 1;
  S.drag = { moved: true, hint: S.selected, added: true };
  drawOverlay();
}

function hintMove(x, y) {
  const h = S.hints[S.drag.hint];
  if (!h || (h.x === x && h.y === y)) return;
  if (!S.drag.moved && S.drag.before) {
    S.history.push(S.drag.before);
    S.future = [];
    S.version += 1;
  }
  h.x = x; h.y = y;
  S.drag.moved = true;
  drawOverlay();
}

function hintUp(drag) {
  if (!drag.moved) { drawOverlay(); suggest(); return; }
  remember(S.hints[drag.hint].rgb);
  edited();
  suggest();
}

function onContext(event) {
  event.preventDefault();
  if (S.mode !== "colourise") return;
  const [x, y] = pixel(event);
  const found = hintAt(x, y);
  if (found < 0) return;
  beginEdit();
  S.hints.splice(found, 1);
  S.selected = -1;
  edited();
}

function onWheel(event) {
  if (S.mode === "labels" || S.mode === "sketch") {
    event.preventDefault();
    setSize(S.size + (event.deltaY < 0 ? 1 : -1));
    return;
  }
  if (S.mode !== "colourise") return;
  event.preventDefault();
  const [x, y] = pixel(event);
  const found = hintAt(x, y);
  const grow = event.deltaY < 0 ? 1 : -1;
  if (found < 0) { S.patch = Math.min(64, Math.max(1, S.patch + grow)); $("patch-value").textContent = String(S.patch); return; }
  beginEdit();
  const h = S.hints[found];
  h.patch = Math.min(64, Math.max(1, h.patch + grow));
  S.patch = h.patch;
  $("patch-value").textContent = String(S.patch);
  edited();
}

function setHintColour(rgb) {
  S.colour = [...rgb];
  $("picker").value = "#" + rgb.map((v) => v.toString(16).padStart(2, "0")).join("");
  const h = S.hints[S.selected];
  if (!h) return;
  beginEdit();
  h.rgb = [...rgb];
  remember(rgb);
  edited();
}

function remember(rgb) {
  S.recent = [rgb, ...S.recent.filter((c) => c.join() !== rgb.join())].slice(0, 10);
  swatches($("recent"), S.recent.map((c) => ({ rgb: c })));
}

function swatches(box, colours) {
  box.replaceChildren(...colours.map(({ rgb, p }) => {
    const b = document.createElement("button");
    b.style.background = `rgb(${rgb.join(",")})`;
    b.title = p === undefined ? `rgb(${rgb.join(", ")})` : `rgb(${rgb.join(", ")}), ${(100 * p).toFixed(0)}%`;
    b.dataset.rgb = rgb.join(",");
    b.onclick = () => setHintColour(rgb);
    return b;
  }));
}

async function suggest() {
  const h = S.hints[S.selected];
  if (!h || !S.photo) return;
  try {
    const others = S.hints.filter((_, i) => i !== S.selected).map(({ x, y, rgb, patch }) => ({ x, y, rgb, patch }));
    const ticket = ++S.tickets.suggest;
    const data = await api("/api/suggest", { model: S.key, image: S.photo, x: h.x, y: h.y, k: 8, hints: others });
    if (ticket === S.tickets.suggest) swatches($("suggestions"), data.colors);
  } catch (err) { showError(err); }
}

// ------------------------------------------------------------------------------------- the page

function chooseClass(id) {
  S.cls = id;
  for (const b of $("palette").children) b.setAttribute("aria-selected", String(Number(b.dataset.cls) === id));
  for (const b of $("palette").children) b.setAttribute("aria-pressed", String(Number(b.dataset.cls) === id));
}

function setTool(tool) {
  S.tool = tool;
  for (const b of document.querySelectorAll("[data-tool]")) b.setAttribute("aria-pressed", String(b.dataset.tool === tool));
  $("object-panel").hidden = tool !== "object" || S.picked < 0;
  $("stamp-panel").hidden = tool !== "stamp";
  if (tool !== "object") { S.picked = -1; drawOverlay(); }
}

function setSize(value) {
  S.size = Math.min(64, Math.max(1, value));
  $("size").value = String(S.size);
  $("size-value").textContent = String(S.size);
}

function blank(width, height) {
  S.width = width; S.height = height;
  const n = width * height;
  const first = S.info.classes_list.length ? S.info.classes_list[0].id : 0;
  S.ids = new Uint8Array(n).fill(first);
  S.inst = new Int32Array(n).fill(first);
  S.styles = {};
  S.sketch = new Uint8Array(n);
  sizeStage(width, height);
}

async function setMode(mode, options = {}) {
  S.mode = mode;
  for (const b of $("modes").children) b.setAttribute("aria-pressed", String(b.dataset.mode === mode));
  for (const el of document.querySelectorAll("[data-for]")) el.hidden = !el.dataset.for.split(" ").includes(mode);
  for (const el of document.querySelectorAll("[data-needs]")) {
    const need = S.info[el.dataset.needs];
    const inMode = !el.dataset.for || el.dataset.for.split(" ").includes(mode);
    el.hidden = !inMode || !need || (Array.isArray(need) && !need.length);
  }
  showExamples();
  S.history = []; S.future = []; S.output = null; S.picked = -1;
  $("output").removeAttribute("src");
  $("before").hidden = true;
  $("compare").value = "0";
  setTool(mode === "sketch" ? "pen" : "brush");
  const example = S.examples.find((e) => (mode === "labels" ? Boolean(e.ids) : Boolean(e.image) && mode !== "sketch"));
  if (options.empty) {
    blank(S.info.width, S.info.height);
  } else if (example && (mode === "labels" || !S.photoImage)) {
    blank(S.info.width, S.info.height);
    await useExample(example, false);
  } else if (mode === "labels" || mode === "sketch") {
    blank(S.info.width, S.info.height);
    drawInput();
    S.strokeEnd = performance.now();
    render();
  } else if (S.photoImage) {
    S.width = S.photoImage.naturalWidth; S.height = S.photoImage.naturalHeight;
    S.hints = []; S.selected = -1;
    sizeStage(S.width, S.height);
    drawInput();
    S.strokeEnd = performance.now();
    render();
  } else {
    sizeStage(S.info.width, S.info.height);
    const ctx = $("input").getContext("2d");
    $("input").width = S.info.width; $("input").height = S.info.height;
    ctx.fillStyle = "#e6e8ec";
    ctx.fillRect(0, 0, S.info.width, S.info.height);
    drawOverlay();
    say("Upload a photo to start.");
  }
  updateButtons();
}

async function chooseModel(key, options = {}) {
  clearError();
  const ticket = ++S.tickets.model;
  const previous = S.key;
  say("Loading the run...");
  let info, examples, objects;
  try {
    const path = `/api/models/${encodeURIComponent(key)}`;
    info = await api(path);
    examples = (await api(`${path}/examples`)).examples;
    objects = info.objects ? (await api(`${path}/objects`)).objects : [];
  } catch (err) {
    if (ticket === S.tickets.model) {
      say("");
      if (previous) $("model").value = previous;
    }
    throw err;
  }
  if (ticket !== S.tickets.model) return false; // another run was chosen meanwhile
  cancelRender();
  S.key = key;
  S.info = info;
  $("about").textContent = `${info.kind}, ${(info.parameters / 1e6).toFixed(2)} M parameters, ${info.width} x ${info.height}` +
    (info.classes_list.length ? `, ${info.classes_list.length} classes` : "");
  $("modes").replaceChildren(...info.modes.map((mode) => {
    const b = document.createElement("button");
    b.dataset.mode = mode;
    b.textContent = { labels: "Label map", sketch: "Sketch", colourise: "Colourise", translate: "Translate" }[mode];
    b.onclick = guard(() => setMode(mode));
    return b;
  }));
  $("palette").replaceChildren(...info.classes_list.map((c) => {
    const b = document.createElement("button");
    b.dataset.cls = String(c.id);
    b.setAttribute("role", "option");
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = `rgb(${c.color.join(",")})`;
    b.append(sw, document.createTextNode(`${c.id} ${c.name}`));
    b.onclick = () => chooseClass(c.id);
    return b;
  }));
  if (info.classes_list.length) chooseClass(info.classes_list[Math.min(1, info.classes_list.length - 1)].id);
  $("direction").replaceChildren(...info.directions.map((d) => new Option(d, d)));
  const sizes = [[info.width, info.height], [256, 256], [512, 512]].filter((s, i, all) => all.findIndex((t) => t[0] === s[0] && t[1] === s[1]) === i);
  $("canvas-size").replaceChildren(new Option("choose...", ""), ...sizes.map(([w, h]) => new Option(`${w} x ${h}`, `${w}x${h}`)));
  S.issued = new Set();
  S.examples = examples;
  showObjects(objects);
  say("");
  if (options.mode !== false) await setMode(info.modes[0]);
  return true;
}

function showExamples() {
  const shown = S.examples.filter((e) => (S.mode === "labels" ? Boolean(e.ids) : S.mode !== "sketch" && Boolean(e.image)));
  $("examples-box").hidden = !shown.length;
  $("examples").replaceChildren(...shown.map((e) => {
    const b = document.createElement("button");
    b.textContent = e.name;
    b.title = `start from ${e.name} of the run's data set`;
    b.onclick = guard(() => useExample(e, true));
    return b;
  }));
}

async function useExample(e, undoable) {
  if (undoable) beginEdit();
  if (S.mode === "labels") {
    S.width = e.width; S.height = e.height;
    S.ids = unb64(e.ids);
    S.inst = e.inst ? int32From(unb64(e.inst)) : Int32Array.from(S.ids);
    S.styles = {};
    sizeStage(S.width, S.height);
  } else {
    const image = await loadImage(e.image);
    S.photo = e.image; S.photoImage = image; S.hints = []; S.selected = -1;
    S.width = image.naturalWidth; S.height = image.naturalHeight;
    sizeStage(S.width, S.height);
  }
  edited();
}

async function uploadPhoto(file) {
  const url = await readFile(file);
  const image = await loadImage(url);
  beginEdit();
  S.photo = url; S.photoImage = image; S.hints = []; S.selected = -1;
  S.width = image.naturalWidth; S.height = image.naturalHeight;
  sizeStage(S.width, S.height);
  S.history = []; S.future = [];
  updateButtons();
  edited();
}

async function uploadSketch(file) {
  const image = await loadImage(await readFile(file));
  beginEdit();
  S.width = image.naturalWidth; S.height = image.naturalHeight;
  sizeStage(S.width, S.height);
  const c = document.createElement("canvas");
  c.width = S.width; c.height = S.height;
  const ctx = c.getContext("2d");
  ctx.drawImage(image, 0, 0);
  const px = ctx.getImageData(0, 0, S.width, S.height).data;
  S.sketch = new Uint8Array(S.width * S.height);
  for (let i = 0; i < S.sketch.length; i++) S.sketch[i] = px[4 * i] + px[4 * i + 1] + px[4 * i + 2] < 384 ? 1 : 0;
  edited();
}

async function uploadLabels() {
  const file = $("upload-labels").files[0];
  const inst = $("upload-inst").files[0];
  if (!file) { if (inst) say("Now choose the label map that goes with this instance map."); return; }
  const body = { model: S.key, label: await readFile(file) };
  let data;
  try {
    if (inst) body.inst = await readFile(inst);
    data = await api("/api/labels", body);
  } finally {
    $("upload-inst").value = "";
  }
  beginEdit();
  S.width = data.width; S.height = data.height;
  sizeStage(S.width, S.height);
  S.ids = unb64(data.ids);
  S.inst = data.inst ? int32From(unb64(data.inst)) : Int32Array.from(S.ids);
  S.styles = {};
  say(data.notes.length ? data.notes.join(" ") : "");
  edited();
}

function download(url, name) {
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
}

async function downloadLabels() {
  if (S.info.label_encoding === "colours") return download($("input").toDataURL("image/png"), "labels.png");
  const blob = await grayPng(S.ids, S.width, S.height);
  const url = URL.createObjectURL(blob);
  download(url, "labels.png");
  setTimeout(() => URL.revokeObjectURL(url), 5000);
}

function session() {
  const doc = { format: "ganvas.studio.session", version: 1, run: S.key, mode: S.mode, width: S.width, height: S.height, direction: $("direction").value || null };
  if (S.mode === "labels") Object.assign(doc, { ids: b64(S.ids), inst: b64(int32Bytes(S.inst)), styles: S.styles });
  if (S.mode === "sketch") doc.sketch = b64(S.sketch);
  if (S.mode === "colourise" || S.mode === "translate") Object.assign(doc, { photo: S.photo, hints: S.hints });
  return doc;
}

// A session file, checked whole before anything on the page changes.
async function readSession(file) {
  const bad = (why) => new Error(`${file.name} is not a studio session this page can open (${why}); download one with Session`);
  let doc;
  try { doc = JSON.parse(await readFile(file, true)); } catch { throw bad("it is not JSON"); }
  if (!doc || doc.format !== "ganvas.studio.session" || doc.version !== 1) throw bad("no ganvas.studio.session of version 1");
  if (!S.models.some((m) => m.id === doc.run)) throw new Error(`${file.name} was made with the run ${doc.run}, which this studio does not offer`);
  const whole = (v) => Number.isInteger(v) && v > 0 && v <= 8192;
  const scene = { mode: doc.mode, direction: doc.direction || null };
  if (doc.mode === "labels" || doc.mode === "sketch") {
    if (!whole(doc.width) || !whole(doc.height)) throw bad("its size is not two whole numbers");
    const n = doc.width * doc.height;
    try {
      if (doc.mode === "labels") {
        Object.assign(scene, { ids: unb64(doc.ids), inst: int32From(unb64(doc.inst)), styles: { ...(doc.styles || {}) } });
        if (scene.ids.length !== n || scene.inst.length !== n) throw bad("its maps are not its size");
      } else {
        scene.sketch = unb64(doc.sketch);
        if (scene.sketch.length !== n) throw bad("its sketch is not its size");
      }
    } catch (err) { throw err.message.includes("session") ? err : bad("its maps are not base64"); }
    Object.assign(scene, { width: doc.width, height: doc.height });
  } else if (doc.mode === "colourise" || doc.mode === "translate") {
    if (typeof doc.photo !== "string" || !doc.photo.startsWith("data:image/")) throw bad("it holds no photo");
    const hints = Array.isArray(doc.hints) ? doc.hints : [];
    const number = (v) => typeof v === "number" && Number.isFinite(v);
    if (!hints.every((h) => h && number(h.x) && number(h.y) && number(h.patch) && Array.isArray(h.rgb) && h.rgb.length === 3 && h.rgb.every(number))) throw bad("a hint lacks x, y, rgb or patch");
    scene.photoImage = await loadImage(doc.photo);
    Object.assign(scene, { photo: doc.photo, hints: hints.map((h) => ({ x: h.x, y: h.y, rgb: [...h.rgb], patch: h.patch })) });
  } else throw bad(`it has no mode ${doc.mode}`);
  return { run: doc.run, scene };
}

async function openSession(file) {
  const { run, scene } = await readSession(file);
  if (run !== S.key) {
    $("model").value = run;
    await chooseModel(run, { mode: false });
  }
  if (!S.info.modes.includes(scene.mode)) throw new Error(`the run ${run} has no ${scene.mode} mode`);
  await setMode(scene.mode, { empty: true });
  if (scene.direction && S.info.directions.includes(scene.direction)) $("direction").value = scene.direction;
  if (scene.photo) {
    S.photo = scene.photo; S.photoImage = scene.photoImage; S.hints = scene.hints; S.selected = -1;
    S.width = scene.photoImage.naturalWidth; S.height = scene.photoImage.naturalHeight;
  } else {
    S.width = scene.width; S.height = scene.height;
    if (scene.ids) { S.ids = scene.ids; S.inst = scene.inst; S.styles = scene.styles; }
    if (scene.sketch) S.sketch = scene.sketch;
  }
  sizeStage(S.width, S.height);
  edited();
}

function guard(fn) {
  return async (...args) => {
    try { clearError(); await fn(...args); } catch (err) { showError(err); }
    // the same file chosen again after a failure is a change again
    const target = args[0] && args[0].target;
    if (target instanceof HTMLInputElement && target.type === "file" && !target.dataset.keep) target.value = "";
  };
}

function wire() {
  const input = $("input");
  input.addEventListener("pointerdown", guard(onDown));
  input.addEventListener("pointermove", guard(onMove));
  input.addEventListener("pointerup", guard(onUp));
  input.addEventListener("pointercancel", guard(onUp));
  input.addEventListener("contextmenu", guard(onContext));
  input.addEventListener("wheel", guard(onWheel), { passive: false });
  for (const b of document.querySelectorAll("[data-tool]")) b.onclick = () => setTool(b.dataset.tool);
  $("size").oninput = () => setSize(Number($("size").value));
  $("undo").onclick = undo; $("redo").onclick = redo;
  $("hint-undo").onclick = undo; $("hint-redo").onclick = redo;
  $("clear").onclick = () => { beginEdit(); blank(S.width, S.height); edited(); };
  $("hint-clear").onclick = () => { beginEdit(); S.hints = []; S.selected = -1; edited(); };
  $("canvas-size").onchange = () => {
    const [w, h] = ($("canvas-size").value || "").split("x").map(Number);
    if (w && h) { beginEdit(); blank(w, h); edited(); }
    $("canvas-size").value = "";
  };
  $("relabel").onclick = guard(relabel);
  $("model").onchange = guard(() => chooseModel($("model").value));
  $("direction").onchange = () => { S.strokeEnd = performance.now(); render(); };
  $("upload-photo").onchange = guard(() => uploadPhoto($("upload-photo").files[0]));
  $("upload-sketch").onchange = guard(() => uploadSketch($("upload-sketch").files[0]));
  $("upload-labels").onchange = guard(uploadLabels);
  $("upload-inst").onchange = guard(uploadLabels);
  $("picker").onchange = () => setHintColour([1, 3, 5].map((i) => parseInt($("picker").value.slice(i, i + 2), 16)));
  $("compare").oninput = () => {
    const v = Number($("compare").value);
    $("before").hidden = v === 0;
    $("before").style.clipPath = `inset(0 ${100 - v}% 0 0)`;
  };
  $("download-output").onclick = () => (S.output ? download(S.output, "output.png") : say("Nothing is rendered yet."));
  $("download-labels").onclick = guard(downloadLabels);
  $("download-session").onclick = () => {
    const url = URL.createObjectURL(new Blob([JSON.stringify(session())], { type: "application/json" }));
    download(url, "session.json");
    setTimeout(() => URL.revokeObjectURL(url), 5000);
  };
  $("load-session").onchange = guard(() => openSession($("load-session").files[0]));
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); e.shiftKey ? redo() : undo(); return; }
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "y") { e.preventDefault(); redo(); return; }
    const keys = { b: "brush", e: "eraser", f: "fill", r: "rect", i: "picker", o: "object", s: "stamp", p: "pen" };
    const tool = keys[e.key.toLowerCase()];
    const button = tool && [...document.querySelectorAll(`[data-tool="${tool}"]`)].find((b) => b.offsetParent !== null);
    if (button && !e.ctrlKey && !e.metaKey) setTool(tool);
  });
}

async function start() {
  wire();
  if (!token) { showError(new Error("this address has no token; open the address the studio printed (it ends in #...)")); return; }
  try {
    const data = await api("/api/models");
    S.models = data.models;
    $("model").replaceChildren(...S.models.map((m) => new Option(`${m.name} (${m.kind}${m.classes ? `, ${m.classes} classes` : ""}, ${m.size_mb} MB)`, m.id)));
    if (!S.models.length) { say("No runs found."); return; }
    await chooseModel(S.models[0].id);
  } catch (err) { showError(err); }
}

start();
