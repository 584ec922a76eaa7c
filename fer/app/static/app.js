// The app's own page script: tells the visitor when the browser refused the camera; releases the
// camera on Stop (Gradio's streaming webcam 6.31 only stops sending frames and leaves every track
// live, the preview playing and the browser's camera light on) and reopens it on Record; draws
// the tracked faces' boxes over the webcam preview (the server sends them as numbers in
// #fer-live-boxes); opens a phone's map thumbnails large on a tap; hides Live's how-to while
// streaming; keeps the top-k's inert rows out of the tab order and moves between tabs by arrows.
(() => {
  const note = (text) => {
    const el = document.getElementById("fer-camera-note");
    if (el) el.textContent = text;
    const status = document.getElementById("live-status");
    if (status) status.classList.toggle("fer-stopped", Boolean(text));
  };
  // Camera errors this script has told the visitor about. Gradio's webcam widget (6.31) starts the
  // camera without awaiting it, so its own handler never sees a refusal and the rejection reaches
  // the page as an uncaught error: once explained in the note, it is handled.
  const explained = new WeakSet();
  // Every camera stream this page was given, and how the last one was asked for (to reopen it
  // alike). One camera at a time: a stream opened anew (Record, another device in Gradio's
  // source menu, which opens one without closing the old) ends the earlier ones.
  const cameras = new Set();
  let asked = { video: true };
  const liveTracks = () => [...cameras].flatMap((s) => s.getTracks()).filter((t) => t.readyState !== "ended");
  const release = () => {
    for (const stream of cameras) stream.getTracks().forEach((track) => track.stop());
    cameras.clear();
  };
  const devices = navigator.mediaDevices;
  if (devices && devices.getUserMedia) {
    const original = devices.getUserMedia.bind(devices);
    devices.getUserMedia = (constraints) => original(constraints).then(
      (stream) => {
        if (stream.getVideoTracks().length) {
          release();
          cameras.add(stream);
          asked = constraints || asked;
        }
        note("");
        return stream;
      },
      (error) => {
        note(error && error.name === "NotAllowedError"
          ? "The browser refused the camera. Allow it in the site settings (the icon left of the address), or use the Image tab to upload a picture."
          : "No camera could be opened (" + ((error && error.name) || "error") + "). Use the Image tab to upload a picture.");
        if (error && typeof error === "object") explained.add(error);
        throw error;
      });
  }
  window.addEventListener("unhandledrejection", (event) => {
    if (event.reason && typeof event.reason === "object" && explained.has(event.reason)) event.preventDefault();
  });
  window.addEventListener("pagehide", release);
  const preview = () => document.querySelector("#live-input video");
  // Stop: every track ended and the preview emptied, so the browser's camera indicator goes off
  // and Gradio's capture loop (which reads the preview) has no picture left to send.
  const stopCamera = () => {
    release();
    const video = preview();
    if (video) { video.pause(); video.srcObject = null; }
    note(liveTracks().length
      ? "⚠️ The camera could not be released: close this tab to turn it off."
      : "Camera off: released (its light goes out) and nothing is analysed. Press Record to open it again.");
  };
  // Record after Stop: open the camera again into the same preview, which Gradio reads from.
  const reopenCamera = () => {
    const video = preview();
    if (!video || liveTracks().length || !navigator.mediaDevices) return;
    note("Opening the camera…");
    navigator.mediaDevices.getUserMedia(asked).then((stream) => {
      video.srcObject = stream;
      video.muted = true;
      return video.play();
    }).catch(() => {});  // a refusal is already in the note
  };
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("#live-input button");
    if (!button) return;
    const text = (button.textContent || "").trim().toLowerCase();
    const howTo = document.getElementById("live-how-to");
    if (text.startsWith("stop")) {
      stopCamera();
      drawBoxes([]);
      if (howTo) howTo.classList.remove("fer-hidden");
    } else if (text.startsWith("record")) {
      if (liveTracks().length) note(""); else reopenCamera();
      if (howTo) howTo.classList.add("fer-hidden");  // streaming: the how-to has done its job
    }
  }, true);

  // Boxes over the preview. Gradio's webcam sends the frame as its preview shows it (mirrored
  // too), so a box only needs the preview's letterboxing.
  const drawBoxes = (boxes) => {
    const video = document.querySelector("#live-input video");
    let layer = document.getElementById("fer-box-layer");
    if (!video || !video.parentElement) return;
    if (!layer || layer.parentElement !== video.parentElement) {
      if (layer) layer.remove();
      layer = document.createElement("div");
      layer.id = "fer-box-layer";
      if (getComputedStyle(video.parentElement).position === "static") video.parentElement.style.position = "relative";
      video.parentElement.appendChild(layer);
    }
    layer.replaceChildren();
    if (!boxes.length || !video.videoWidth) return;
    const frame = video.getBoundingClientRect();
    const parent = video.parentElement.getBoundingClientRect();
    const scale = Math.min(frame.width / video.videoWidth, frame.height / video.videoHeight);
    const shownW = video.videoWidth * scale, shownH = video.videoHeight * scale;
    const left = frame.left - parent.left + (frame.width - shownW) / 2;
    const top = frame.top - parent.top + (frame.height - shownH) / 2;
    for (const [x0, y0, x1, y1, text, colour] of boxes) {
      const box = document.createElement("div");
      box.className = "fer-box";
      Object.assign(box.style, {
        left: `${left + x0 * shownW}px`, top: `${top + y0 * shownH}px`,
        width: `${(x1 - x0) * shownW}px`, height: `${(y1 - y0) * shownH}px`, borderColor: colour,
      });
      const label = document.createElement("span");
      label.textContent = text;
      label.style.background = colour;
      box.appendChild(label);
      layer.appendChild(box);
    }
  };
  // Phones show the three maps as thumbnails: a tap opens one large over the page, another tap (or
  // Escape) closes it. Which one is open is kept by its block's id, so a live redraw keeps it open.
  let zoomed = null;
  const applyZoom = () => {
    for (const open of document.querySelectorAll(".fer-panel.fer-zoomed")) {
      if (!zoomed || open.parentElement.closest("[id]")?.id !== zoomed) open.classList.remove("fer-zoomed");
    }
    const panel = zoomed && document.querySelector(`#${zoomed} .fer-panel`);
    if (panel && !panel.classList.contains("fer-zoomed")) panel.classList.add("fer-zoomed");
  };
  document.addEventListener("click", (event) => {
    const panel = event.target.closest && event.target.closest(".fer-panels .fer-panel");
    if (!panel) return;
    const owner = panel.parentElement.closest("[id]");
    zoomed = zoomed || !owner || !matchMedia("(max-width: 700px)").matches ? null : owner.id;
    applyZoom();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && zoomed) { zoomed = null; applyZoom(); }
  });
  new MutationObserver(() => { if (zoomed) applyZoom(); }).observe(document.documentElement, { childList: true, subtree: true });

  // Access: the top-k's rows are Gradio buttons that do nothing here, so they leave the tab order
  // (the values stay readable); the tab bar moves with the arrow keys, as a tab list does.
  const quietRows = () => {
    for (const row of document.querySelectorAll('[id$="-top-k"] button.confidence-set:not([tabindex])')) {
      row.setAttribute("tabindex", "-1");
      row.setAttribute("aria-disabled", "true");
    }
  };
  new MutationObserver(quietRows).observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    const tab = event.target.closest && event.target.closest("#tabs [role=tab]");
    if (!tab) return;
    const tabs = [...document.querySelectorAll("#tabs [role=tab]")].filter((t) => t.offsetParent !== null);
    const next = tabs[(tabs.indexOf(tab) + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    if (next) { event.preventDefault(); next.focus(); next.click(); }
  });

  let shown = null;  // the boxes last drawn: redraw only when the server sent others
  const watchBoxes = () => {
    const source = document.getElementById("fer-live-boxes");
    const data = source ? source.dataset.boxes || "[]" : "[]";
    if (data === shown) return;
    shown = data;
    try { drawBoxes(JSON.parse(data)); } catch (error) { drawBoxes([]); }
  };
  new MutationObserver(watchBoxes).observe(document.documentElement, { childList: true, subtree: true,
                                                                       attributes: true, attributeFilter: ["data-boxes"] });

  // Live on this device: its module is served by the app itself (fer.app.ondevice). A browser
  // that cannot load it keeps the server path, and says so in one line.
  import(new URL("ondevice/live.mjs", document.baseURI).href).catch((error) => {
    const server = [...document.querySelectorAll("#live-where input[type=radio]")].find((i) => /server/i.test(i.value));
    if (server) server.click();
    const line = document.getElementById("live-where-note");
    if (line) line.textContent = "This browser cannot analyse here (" + ((error && error.name) || "error") + "), so frames go to the server.";
  });
})();

// ---- Video tab (issue 22 item 8) ----
// A clip the browser cannot play makes Gradio's player toast "Video not playable" while the server
// says what it makes of the upload (refused, or received and readable): one message, the server's.
// A capture listener on the document runs before the player's own listener on the <video>.
document.addEventListener("error", (event) => {
  const target = event.target;
  if (target instanceof HTMLVideoElement && target.closest("#video-input")) event.stopPropagation();
}, true);
