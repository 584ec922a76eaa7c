// The app's own page script: tells the visitor when the browser refused the camera and when the
// webcam was stopped (Gradio's webcam widget says neither).
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
  const devices = navigator.mediaDevices;
  if (devices && devices.getUserMedia) {
    const original = devices.getUserMedia.bind(devices);
    devices.getUserMedia = (constraints) => original(constraints).then(
      (stream) => { note(""); return stream; },
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
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("#live-input button");
    if (!button) return;
    const text = (button.textContent || "").trim().toLowerCase();
    if (text.startsWith("stop")) note("Camera stopped: nothing is being analysed. Press Record to start again.");
    else if (text.startsWith("record")) note("");
  }, true);
})();
