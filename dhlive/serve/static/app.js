"use strict";
// The page of `dhlive serve`: avatars from /api/avatars, jobs posted to /api/jobs and polled.
let chosen = null;
let live = null;  // the live session: {pc, id, mic, timer}
const $ = (id) => document.getElementById(id);

function say(text, isError) {
  $("message").textContent = text;
  $("message").className = "message" + (isError ? " error" : "");
}

async function loadAvatars() {
  const res = await fetch("/api/avatars");
  const data = await res.json();
  const box = $("avatars");
  box.textContent = "";
  if (!data.avatars.length) {
    $("avatars-note").textContent = "No avatars in " + data.folder + ": make one with `dhlive prepare VIDEO --name NAME`.";
    return;
  }
  for (const a of data.avatars) {
    const card = document.createElement("button");
    card.type = "button";
    card.className = "avatar";
    card.dataset.name = a.name;
    const img = document.createElement("img");
    img.src = a.thumbnail;
    img.alt = a.name;
    card.append(img, document.createTextNode(a.name + (a.own_renderer ? " *" : "")));
    card.title = a.seconds + " s of video" + (a.own_renderer ? ", its own fine-tuned renderer" : "");
    card.onclick = () => choose(a.name);
    box.append(card);
  }
  $("avatars-note").textContent = data.avatars.some((a) => a.own_renderer) ? "* has its own fine-tuned renderer." : "";
  choose(localStorage.getItem("dhlive-avatar") || data.avatars[0].name);
}

function choose(name) {
  const cards = [...document.querySelectorAll(".avatar")];
  const card = cards.find((c) => c.dataset.name === name) || cards[0];
  cards.forEach((c) => c.classList.toggle("chosen", c === card));
  chosen = card.dataset.name;
  localStorage.setItem("dhlive-avatar", chosen);
  $("submit").disabled = false;
  $("live-start").disabled = live !== null;
}

// --- live: the microphone out, the avatar's face and voice back, on one peer connection ---

function liveSay(text, isError) {
  $("live-message").textContent = text;
  $("live-message").className = "message" + (isError ? " error" : "");
}

async function startLive() {
  $("live-start").disabled = true;
  const pc = new RTCPeerConnection();
  let mic = null;
  try {
    mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    mic.getTracks().forEach((t) => pc.addTrack(t, mic));
  } catch (e) {
    liveSay("No microphone (" + e.name + "): the avatar can still say typed text.");
    pc.addTransceiver("audio", { direction: "recvonly" });
  }
  pc.addTransceiver("video", { direction: "recvonly" });
  const incoming = new MediaStream();
  pc.ontrack = (e) => { incoming.addTrack(e.track); $("live").srcObject = incoming; };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") done(); };
  });
  const res = await fetch("/api/live", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type, avatar: chosen }),
  });
  const body = await res.json();
  if (!res.ok) {
    pc.close();
    if (mic) mic.getTracks().forEach((t) => t.stop());
    $("live-start").disabled = false;
    return liveSay(body.error, true);
  }
  await pc.setRemoteDescription({ sdp: body.sdp, type: body.type });
  live = { pc, id: body.id, mic, timer: setInterval(liveStats, 1000) };
  $("live-stop").disabled = false;
  $("say").disabled = false;
}

async function liveStats() {
  if (!live) return;
  const res = await fetch("/api/live/" + live.id);
  if (!res.ok) return;
  const s = await res.json();
  const jitter = await jitterBuffer();
  if (s.latency_ms && s.latency_ms.mean !== undefined) {
    $("latency").textContent = "latency, sound in to frame out: mean " + Math.round(s.latency_ms.mean) +
      " ms, p95 " + Math.round(s.latency_ms.p95) + " ms (server); " +
      (jitter === null ? "" : "browser jitter buffer " + Math.round(jitter) + " ms; ") + s.sent_frames + " frames sent";
  }
}

// the mean delay of this browser's video jitter buffer, in ms (WebRTC statistics), or null
async function jitterBuffer() {
  if (!live) return null;
  let delay = null;
  (await live.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video" && r.jitterBufferEmittedCount) {
      delay = (1000 * r.jitterBufferDelay) / r.jitterBufferEmittedCount;
    }
  });
  return delay;
}

async function stopLive() {
  if (!live) return;
  clearInterval(live.timer);
  await fetch("/api/live/" + live.id, { method: "DELETE" });
  live.pc.close();
  if (live.mic) live.mic.getTracks().forEach((t) => t.stop());
  live = null;
  $("live-stop").disabled = true;
  $("say").disabled = true;
  $("live-start").disabled = !chosen;
}

async function say(event) {
  event.preventDefault();
  const text = $("say-text").value.trim();
  if (!live || !text) return;
  const res = await fetch("/api/live/" + live.id + "/say", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text }),
  });
  const body = await res.json();
  liveSay(res.ok ? "Saying " + body.seconds + " s of speech." : body.error, !res.ok);
}

function submitJob(event) {
  event.preventDefault();
  const file = $("audio").files[0];
  if (!chosen || !file) return say("Pick an avatar and a recording first.", true);
  const form = new FormData();
  form.append("avatar", chosen);
  form.append("audio", file);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/jobs");
  $("upload").hidden = false;
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) $("upload").value = e.loaded / e.total; };
  xhr.onload = () => {
    $("upload").hidden = true;
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (e) { body = { error: "the server answered " + xhr.status }; }
    if (xhr.status === 201) { say("Queued: " + file.name); refreshJobs(); }
    else say(body.error || "the server answered " + xhr.status, true);
  };
  xhr.onerror = () => { $("upload").hidden = true; say("The upload failed (is the server still running?)", true); };
  xhr.send(form);
}

async function refreshJobs() {
  let data;
  try { data = await (await fetch("/api/jobs")).json(); } catch (e) { return; }
  const body = $("jobs").tBodies[0];
  body.textContent = "";
  for (const j of data.jobs) {
    const row = body.insertRow();
    row.id = "job-" + j.id;
    row.insertCell().textContent = j.avatar;
    row.insertCell().textContent = j.upload_name;
    const state = row.insertCell();
    state.textContent = j.state === "failed" ? "failed: " + j.error : j.state;
    state.className = j.state;
    const bar = document.createElement("progress");
    bar.max = 1; bar.value = j.progress;
    row.insertCell().append(bar);
    const link = row.insertCell();
    if (j.video) {
      const a = document.createElement("a");
      a.href = j.video; a.textContent = "download"; a.className = "download";
      link.append(a);
    }
  }
}

$("job-form").addEventListener("submit", submitJob);
$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", stopLive);
$("say-form").addEventListener("submit", say);
window.addEventListener("beforeunload", () => {
  if (live) fetch("/api/live/" + live.id, { method: "DELETE", keepalive: true });
});
loadAvatars();
refreshJobs();
setInterval(refreshJobs, 1000);
