"use strict";
// The page of `dhlive serve`: avatars from /api/avatars, jobs posted to /api/jobs and polled.
let chosen = null;
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
  $("avatars-note").textContent = "* has its own fine-tuned renderer.";
  choose(localStorage.getItem("dhlive-avatar") || data.avatars[0].name);
}

function choose(name) {
  const cards = [...document.querySelectorAll(".avatar")];
  const card = cards.find((c) => c.dataset.name === name) || cards[0];
  cards.forEach((c) => c.classList.toggle("chosen", c === card));
  chosen = card.dataset.name;
  localStorage.setItem("dhlive-avatar", chosen);
  $("submit").disabled = false;
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
loadAvatars();
refreshJobs();
setInterval(refreshJobs, 1000);
