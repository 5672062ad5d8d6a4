// mnistcnn drawing page: draw on #pad with pointer events (mouse, pen, touch); the
// drawing is sent to POST v1/predict as a PNG while you draw and when you lift the pointer.
// No build step and no dependencies: this file is served as it is.
"use strict";

(() => {
  const STROKE = 0.06;       // line width as a fraction of the canvas side (survives 28x28)
  const SEND_SIDE = 140;     // the drawing is sent at 140x140 px (5x the model's 28)
  const PHOTO_SIDE = 1024;   // photos larger than this are scaled down before upload
  const PHOTO_RAW_BYTES = 2 * 1024 * 1024;  // smaller photo files are sent unchanged
  const THROTTLE_MS = 150;   // at most one prediction per this interval while drawing

  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");
  const result = document.getElementById("result");
  const topLabel = document.getElementById("top-label");
  const unsure = document.getElementById("unsure");
  const topk = document.getElementById("topk");
  const seen = document.getElementById("seen");
  const statusLine = document.getElementById("status");
  const photo = document.getElementById("photo");

  const state = {
    pointerId: null, last: null, hasInk: false, photo: false,
    dirty: false, inFlight: false, timer: null, seq: 0,
  };

  function fillWhite() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
  }

  // Backing store = CSS size x devicePixelRatio, so strokes stay sharp; a drawing survives
  // a resize (phone rotation) by being scaled into the new size.
  function fitCanvas() {
    const side = Math.max(1, Math.round(pad.getBoundingClientRect().width *
                                        (window.devicePixelRatio || 1)));
    if (pad.width === side && pad.height === side) return;
    let copy = null;
    if (state.hasInk) {
      copy = document.createElement("canvas");
      copy.width = pad.width;
      copy.height = pad.height;
      copy.getContext("2d").drawImage(pad, 0, 0);
    }
    pad.width = pad.height = side;
    fillWhite();
    if (copy) ctx.drawImage(copy, 0, 0, side, side);
  }

  function point(e) {
    const r = pad.getBoundingClientRect();
    return { x: (e.clientX - r.left) * pad.width / r.width,
             y: (e.clientY - r.top) * pad.height / r.height };
  }

  function lineWidth() { return pad.width * STROKE; }

  function dot(p) {
    ctx.fillStyle = "#000";
    ctx.beginPath();
    ctx.arc(p.x, p.y, lineWidth() / 2, 0, 2 * Math.PI);
    ctx.fill();
  }

  function segment(a, b) {
    ctx.strokeStyle = "#000";
    ctx.lineWidth = lineWidth();
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.stroke();
  }

  pad.addEventListener("pointerdown", (e) => {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    if (state.pointerId !== null) return;  // one stroke at a time (ignore a second finger)
    e.preventDefault();
    if (state.photo) clearAll();  // drawing replaces an uploaded photo
    pad.setPointerCapture(e.pointerId);
    state.pointerId = e.pointerId;
    state.last = point(e);
    dot(state.last);
    inked(false);
  });

  pad.addEventListener("pointermove", (e) => {
    if (e.pointerId !== state.pointerId) return;
    e.preventDefault();
    const list = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
    for (const ev of list.length ? list : [e]) {
      const p = point(ev);
      segment(state.last, p);
      state.last = p;
    }
    inked(false);
  });

  function endStroke(e) {
    if (e.pointerId !== state.pointerId) return;
    state.pointerId = null;
    state.last = null;
    inked(true);
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

  // Ask for a prediction: at once (stroke ended) or throttled (while drawing).
  function inked(now) {
    state.hasInk = true;
    state.dirty = true;
    result.dataset.state = "busy";  // "done" only once the answer covers every stroke
    if (now) {
      clearTimeout(state.timer);
      state.timer = null;
      sendDrawing();
    } else if (state.timer === null) {
      state.timer = setTimeout(() => { state.timer = null; sendDrawing(); }, THROTTLE_MS);
    }
  }

  function toBlob(canvas, type, quality) {
    return new Promise((resolve) => canvas.toBlob(resolve, type, quality));
  }

  function scaled(source, w, h, side) {
    const f = Math.min(1, side / Math.max(w, h));
    const c = document.createElement("canvas");
    c.width = Math.max(1, Math.round(w * f));
    c.height = Math.max(1, Math.round(h * f));
    const g = c.getContext("2d");
    g.imageSmoothingEnabled = true;
    g.imageSmoothingQuality = "high";
    g.fillStyle = "#fff";
    g.fillRect(0, 0, c.width, c.height);
    g.drawImage(source, 0, 0, c.width, c.height);
    return c;
  }

  // One request in flight at a time; strokes drawn meanwhile are sent when it returns.
  async function sendDrawing() {
    if (!state.dirty || !state.hasInk || state.photo) return;
    if (state.inFlight) return;
    state.dirty = false;
    state.inFlight = true;
    try {
      const blob = await toBlob(scaled(pad, pad.width, pad.height, SEND_SIDE), "image/png");
      await predict(blob, "image/png");
    } finally {
      state.inFlight = false;
      if (state.dirty && state.pointerId === null) sendDrawing();
      else if (state.dirty && state.timer === null) inked(false);
    }
  }

  async function predict(body, type) {
    const seq = ++state.seq;
    result.dataset.state = "busy";
    let res;
    let data;
    try {
      res = await fetch("v1/predict?return_input=true", {
        method: "POST", headers: { "Content-Type": type }, body,
      });
      data = await res.json();
    } catch (err) {
      if (seq === state.seq) showError(`cannot reach the server (${err.message})`);
      return;
    }
    if (seq !== state.seq) return;  // cleared, or a newer drawing was sent meanwhile
    if (!res.ok) {
      showError(friendlyError(res.status, data && data.detail ? String(data.detail) : ""));
      return;
    }
    show(data.predictions[0]);
  }

  function show(pred) {
    const rows = pred.topk.slice(0, 3);
    // An unsure answer shows its best guess, greyed, beside the "unsure" badge.
    const guess = pred.label !== null ? pred.label : rows.length ? rows[0].label : "?";
    topLabel.textContent = guess;
    unsure.hidden = !pred.unsure;
    result.dataset.unsure = String(Boolean(pred.unsure));
    topk.replaceChildren(...rows.map((t) => {
      const li = document.createElement("li");
      const pct = (100 * t.probability).toFixed(1);
      li.dataset.label = t.label;
      li.dataset.probability = String(t.probability);
      li.innerHTML = '<span class="digit"></span><span class="bar"><span class="fill"></span>' +
                     '</span><span class="pct"></span>';
      li.querySelector(".digit").textContent = t.label;
      li.querySelector(".fill").style.width = `${pct}%`;
      li.querySelector(".pct").textContent = `${pct}%`;
      return li;
    }));
    drawSeen(pred.input);
    statusLine.textContent = !rows.length ? "No digit found in the picture."
      : pred.unsure ? "Not sure: try drawing the digit larger or more clearly." : "";
    statusLine.classList.remove("error");
    result.dataset.label = pred.label === null ? "" : pred.label;
    result.dataset.state = state.dirty ? "busy" : "done";
  }

  // The 28x28 the model saw, light ink on black as in MNIST; CSS scales it up (pixelated).
  function drawSeen(rows) {
    const g = seen.getContext("2d");
    if (!rows) { g.clearRect(0, 0, 28, 28); return; }
    const img = g.createImageData(28, 28);
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const v = rows[y][x];
        const i = 4 * (28 * y + x);
        img.data[i] = img.data[i + 1] = img.data[i + 2] = v;
        img.data[i + 3] = 255;
      }
    }
    g.putImageData(img, 0, 0);
  }

  // What the page says for an API error: words for people, not the API's own text.
  // (Kept free of the page's state: tests/test_serve_page.py runs it in Node.)
  // friendlyError begin
  function friendlyError(status, detail) {
    const text = String(detail || "");
    if (/HEIC|HEIF/.test(text)) {
      return "A HEIC photo: the server cannot read it. Export it as JPEG (or PNG) and upload that.";
    }
    if (status === 415 || /not an image|unsupported Content-Type/i.test(text)) {
      return "Not an image: choose a photo or a picture file (PNG, JPEG, ...).";
    }
    if (/truncated or corrupt/.test(text)) {
      return "The picture file is damaged (truncated or corrupt): try another one.";
    }
    if (/too small/.test(text)) return "The picture is too small to hold a digit.";
    if (/too elongated/.test(text)) return "The picture is too long and thin for one digit.";
    if (/pages/.test(text) && /TIFF/.test(text)) return "A TIFF of several pages: upload one page.";
    if (status === 413) return "The picture is too large: try a smaller one.";
    if (status === 503) return "The server is busy: try again in a moment.";
    return text || `The server answered HTTP ${status}.`;
  }
  // friendlyError end

  function showError(message) {
    statusLine.textContent = message;
    statusLine.classList.add("error");
    result.dataset.state = "error";
  }

  function clearAll() {
    state.seq++;  // answers to earlier requests are ignored
    state.hasInk = state.photo = state.dirty = false;
    clearTimeout(state.timer);
    state.timer = null;
    fillWhite();
    topLabel.textContent = "?";
    unsure.hidden = true;
    topk.replaceChildren();
    drawSeen(null);
    statusLine.textContent = "";
    statusLine.classList.remove("error");
    result.dataset.state = "empty";
    result.dataset.label = "";
    result.dataset.unsure = "false";
  }

  document.getElementById("clear").addEventListener("click", clearAll);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") clearAll(); });

  // A photo: shown on the pad (fitted, on white) and sent as it is when small, else scaled
  // down to PHOTO_SIDE px as JPEG. <img> applies the EXIF orientation in current browsers.
  photo.addEventListener("change", async () => {
    const file = photo.files && photo.files[0];
    photo.value = "";
    if (!file) return;
    const url = URL.createObjectURL(file);
    const img = new Image();
    try {
      await new Promise((resolve, reject) => {
        img.onload = resolve;
        img.onerror = () => reject(new Error("the browser cannot open this file as an image"));
        img.src = url;
      });
    } catch (err) {
      URL.revokeObjectURL(url);
      clearAll();
      if (file.type && !file.type.startsWith("image/")) {  // a script, a PDF, a text file
        showError(friendlyError(415, ""));
      } else if (file.size <= PHOTO_RAW_BYTES) {  // the server may still read it (e.g. TIFF)
        state.photo = true;
        await predict(file, file.type || "image/png");
      } else {
        showError(err.message);
      }
      return;
    }
    clearAll();
    state.photo = state.hasInk = true;
    const w = img.naturalWidth;
    const h = img.naturalHeight;
    const f = Math.min(pad.width / w, pad.height / h);
    ctx.drawImage(img, (pad.width - w * f) / 2, (pad.height - h * f) / 2, w * f, h * f);
    let body = file;
    let type = file.type || "image/png";
    if (file.size > PHOTO_RAW_BYTES || Math.max(w, h) > PHOTO_SIDE * 4) {
      body = await toBlob(scaled(img, w, h, PHOTO_SIDE), "image/jpeg", 0.92);
      type = "image/jpeg";
    }
    URL.revokeObjectURL(url);
    await predict(body, type);
  });

  async function showModel() {
    try {
      const res = await fetch("v1/model");
      const m = await res.json();
      const acc = typeof m.test_accuracy === "number"
        ? `, test accuracy ${(100 * m.test_accuracy).toFixed(2)}%` : "";
      document.getElementById("model").textContent =
        `Model: ${m.name || "?"}${m.dataset ? ` trained on ${m.dataset}` : ""}${acc}`;
    } catch (err) {
      // the page still works without it
    }
  }

  window.addEventListener("resize", fitCanvas);
  fitCanvas();
  clearAll();
  showModel();
})();
