// mnistcnn drawing page, second part: write a number on the wide #numpad; the writing is
// sent to POST v1/read as a PNG when you lift the pointer (and now and then while you
// write), and each digit's box and reading is drawn over it on #numboxes.
// No build step and no dependencies: this file is served as it is.
"use strict";

(() => {
  const STROKE = 0.045;      // line width as a fraction of the canvas height
  const SEND_HEIGHT = 160;   // the writing is sent 160 px high (width in proportion)
  const THROTTLE_MS = 400;   // at most one reading per this interval while writing

  const pad = document.getElementById("numpad");
  if (!pad) return;
  const ctx = pad.getContext("2d");
  const boxes = document.getElementById("numboxes");
  const text = document.getElementById("number");
  const statusLine = document.getElementById("numstatus");
  const state = {
    pointerId: null, last: null, hasInk: false, dirty: false, inFlight: false,
    timer: null, seq: 0,
  };

  function fillWhite() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
  }

  function fitCanvas() {
    const r = pad.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(r.width * dpr));
    const h = Math.max(1, Math.round(r.height * dpr));
    if (pad.width === w && pad.height === h) return;
    let copy = null;
    if (state.hasInk) {
      copy = document.createElement("canvas");
      copy.width = pad.width;
      copy.height = pad.height;
      copy.getContext("2d").drawImage(pad, 0, 0);
    }
    pad.width = boxes.width = w;
    pad.height = boxes.height = h;
    fillWhite();
    if (copy) ctx.drawImage(copy, 0, 0, w, h);
  }

  function point(e) {
    const r = pad.getBoundingClientRect();
    return { x: (e.clientX - r.left) * pad.width / r.width,
             y: (e.clientY - r.top) * pad.height / r.height };
  }

  function stroke(a, b) {
    ctx.strokeStyle = "#000";
    ctx.fillStyle = "#000";
    ctx.lineWidth = pad.height * STROKE;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    if (b) {
      ctx.moveTo(a.x, a.y);
      ctx.lineTo(b.x, b.y);
      ctx.stroke();
    } else {
      ctx.arc(a.x, a.y, ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  pad.addEventListener("pointerdown", (e) => {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    if (state.pointerId !== null) return;
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    state.pointerId = e.pointerId;
    state.last = point(e);
    stroke(state.last, null);
    written(false);
  });

  pad.addEventListener("pointermove", (e) => {
    if (e.pointerId !== state.pointerId) return;
    e.preventDefault();
    const list = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
    for (const ev of list.length ? list : [e]) {
      const p = point(ev);
      stroke(state.last, p);
      state.last = p;
    }
    written(false);
  });

  function endStroke(e) {
    if (e.pointerId !== state.pointerId) return;
    state.pointerId = null;
    state.last = null;
    written(true);
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

  function written(now) {
    state.hasInk = true;
    state.dirty = true;
    text.dataset.state = "busy";
    if (now) {
      clearTimeout(state.timer);
      state.timer = null;
      send();
    } else if (state.timer === null) {
      state.timer = setTimeout(() => { state.timer = null; send(); }, THROTTLE_MS);
    }
  }

  async function send() {
    if (!state.dirty || !state.hasInk || state.inFlight) return;
    state.dirty = false;
    state.inFlight = true;
    const seq = ++state.seq;
    const f = SEND_HEIGHT / pad.height;
    const c = document.createElement("canvas");
    c.width = Math.max(1, Math.round(pad.width * f));
    c.height = SEND_HEIGHT;
    const g = c.getContext("2d");
    g.imageSmoothingQuality = "high";
    g.drawImage(pad, 0, 0, c.width, c.height);
    try {
      const blob = await new Promise((resolve) => c.toBlob(resolve, "image/png"));
      const res = await fetch("v1/read", {
        method: "POST", headers: { "Content-Type": "image/png" }, body: blob,
      });
      const data = await res.json();
      if (seq !== state.seq) return;  // cleared, or newer writing was sent meanwhile
      if (!res.ok) {
        showError(data && data.detail ? String(data.detail) : `HTTP ${res.status}`);
      } else {
        show(data.readings[0], 1 / f);
      }
    } catch (err) {
      if (seq === state.seq) showError(`cannot reach the server (${err.message})`);
    } finally {
      state.inFlight = false;
      if (state.dirty && state.pointerId === null) send();
      else if (state.dirty && state.timer === null) written(false);
    }
  }

  // Each digit's box (in the sent picture's pixels, times `scale` on the canvas) and reading.
  function show(reading, scale) {
    const g = boxes.getContext("2d");
    g.clearRect(0, 0, boxes.width, boxes.height);
    g.lineWidth = Math.max(2, boxes.height / 120);
    g.font = `${Math.round(boxes.height / 9)}px system-ui, sans-serif`;
    for (const d of reading.digits) {
      const [l, t, r, b] = d.box.map((v) => v * scale);
      g.strokeStyle = g.fillStyle = d.unsure ? "#b45309" : "#15803d";
      g.strokeRect(l, t, r - l, b - t);
      const label = d.label === null ? "?" : d.label;
      g.fillText(`${label} ${Math.round(100 * d.probability)}%`, l + 2, Math.max(14, t - 4));
    }
    text.textContent = reading.text || "-";
    text.dataset.text = reading.text;
    text.dataset.digits = JSON.stringify(reading.digits.map((d) => d.box));
    statusLine.textContent = !reading.digits.length ? "No digit found."
      : reading.unsure ? "? marks a digit the model is not sure of." : "";
    statusLine.classList.remove("error");
    text.dataset.state = state.dirty ? "busy" : "done";
  }

  function showError(message) {
    statusLine.textContent = message;
    statusLine.classList.add("error");
    text.dataset.state = "error";
  }

  function clearAll() {
    state.seq++;
    state.hasInk = state.dirty = false;
    clearTimeout(state.timer);
    state.timer = null;
    fillWhite();
    boxes.getContext("2d").clearRect(0, 0, boxes.width, boxes.height);
    text.textContent = "";
    text.dataset.text = "";
    text.dataset.state = "empty";
    statusLine.textContent = "";
    statusLine.classList.remove("error");
  }

  document.getElementById("numclear").addEventListener("click", clearAll);
  window.addEventListener("resize", fitCanvas);
  fitCanvas();
  clearAll();
})();
