// The chat page's script: sign-in with a pasted token (kept in sessionStorage), turns streamed
// from POST /api/chat/respond through fetch (EventSource can't send Authorization), history,
// clear, errors in words, and voice where the browser has it. It calls this origin only.
"use strict";

const TOKEN_KEY = "eindr.token";
const MODE_KEY = "eindr.mode";
const SPEAK_KEY = "eindr.speak";
const ENGINE_NAMES = { minimal: "minimal", vLLM: "vLLM", cpu: "CPU" };

const $ = (id) => document.getElementById(id);
const state = { token: null, user: null, turn: null, retryTimer: null };

// --- Sign-in ------------------------------------------------------------------------------

/** The user a token is for: its `sub`, read without verifying (the server verifies). */
function subjectOf(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return typeof claims.sub === "string" && claims.sub ? claims.sub : null;
  } catch {
    return null;
  }
}

/** A token handed over in the fragment (`#token=...`, never sent to a server) moves to this
 * tab's storage, and the fragment is wiped from the address bar and the tab's history. */
function takeTokenFromFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token.trim());
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function signIn(token) {
  const user = subjectOf(token);
  if (!user) {
    showSignIn("That doesn't look like an access token: paste the whole JWT (three parts joined by dots).");
    return false;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  state.token = token;
  state.user = user;
  $("who").textContent = `Signed in as ${user}`;
  $("signin").hidden = true;
  $("chat").hidden = false;
  $("controls").hidden = false;
  $("message").focus();
  loadHistory();
  return true;
}

function showSignIn(message) {
  if (state.turn) state.turn.abort();
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.user = null;
  $("chat").hidden = true;
  $("controls").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("token").value = "";
  $("token").focus();
}

// --- Talking to the API -------------------------------------------------------------------

function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, ...(options.headers || {}) };
  return fetch(path, { ...options, headers, credentials: "omit", cache: "no-store" });
}

/** The API's error message, from `{"error":{"message"}}` when the body has one. */
async function errorMessage(response) {
  try {
    const body = await response.json();
    return body?.error?.message || response.statusText;
  } catch {
    return response.statusText || `HTTP ${response.status}`;
  }
}

/** Says what went wrong in words, and what to do. True when the caller may carry on. */
async function explain(response) {
  const message = await errorMessage(response);
  if (response.status === 401) {
    showSignIn(`Your sign-in was not accepted (${message}). Sign in again with a valid token.`);
  } else if (response.status === 429) {
    countDown(Number.parseInt(response.headers.get("Retry-After") || "1", 10));
  } else if (response.status >= 500) {
    setStatus(`Something went wrong on the server (${message}). Try again in a moment.`, "error");
  } else {
    setStatus(message, "error");
  }
}

function setStatus(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.dataset.kind = kind;
}

/** 429: sending waits out Retry-After, with the seconds counting down where it is shown. */
function countDown(seconds) {
  clearInterval(state.retryTimer);
  let left = Math.max(1, Number.isFinite(seconds) ? seconds : 1);
  const show = () => {
    setStatus(`Too many messages. You can send again in ${left} s.`, "wait");
    $("status").dataset.retry = String(left);
  };
  $("send").disabled = true;
  show();
  state.retryTimer = setInterval(() => {
    left -= 1;
    if (left > 0) return show();
    clearInterval(state.retryTimer);
    delete $("status").dataset.retry;
    setStatus("");
    $("send").disabled = false;
  }, 1000);
}

// --- The conversation ---------------------------------------------------------------------

function addMessage(role, text) {
  const item = document.createElement("div");
  item.className = `message ${role}`;
  const who = document.createElement("span");
  who.className = "visually-hidden";
  who.textContent = role === "user" ? "You said: " : "Eindr said: ";
  const content = document.createElement("p");
  content.className = "content";
  content.textContent = text;
  item.append(who, content);
  $("log").append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function describe(item, answer, elapsedMs) {
  const engine = answer?.model_info?.inference_engine;
  const parts = [ENGINE_NAMES[engine] || engine || "unknown engine"];
  if (answer?.fallback_used) parts.push("fell back");
  if (answer?.cached) parts.push("cached");
  parts.push(`${(elapsedMs / 1000).toFixed(2)} s`);
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.textContent = parts.join(" · ");
  item.append(meta);
  item.dataset.engine = engine || "";
  item.dataset.fallback = String(Boolean(answer?.fallback_used));
}

async function loadHistory() {
  $("log").replaceChildren();
  const response = await api(`/api/chat/history/${encodeURIComponent(state.user)}`).catch(() => null);
  if (!response) return setStatus("The server can't be reached. Try again in a moment.", "error");
  if (!response.ok) return explain(response);
  const body = await response.json();
  for (const message of body.messages || []) {
    addMessage(message.role === "user" ? "user" : "assistant", message.content);
  }
  $("log").dataset.loaded = "true";
}

async function clearHistory() {
  const response = await api(`/api/chat/history/${encodeURIComponent(state.user)}`, { method: "DELETE" })
    .catch(() => null);
  if (!response) return setStatus("The server can't be reached. Try again in a moment.", "error");
  if (!response.ok) return explain(response);
  $("log").replaceChildren();
  setStatus("Conversation cleared.");
}

/** Splits server-sent events off the front of `buffer`; returns the events' data and the rest. */
function takeEvents(buffer) {
  const events = [];
  let boundary;
  buffer = buffer.replace(/\r\n/g, "\n");
  while ((boundary = buffer.indexOf("\n\n")) >= 0) {
    const block = buffer.slice(0, boundary);
    buffer = buffer.slice(boundary + 2);
    const data = block
      .split("\n")
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).replace(/^ /, ""))
      .join("\n");
    if (data) events.push(data);
  }
  return [events, buffer];
}

async function send(message) {
  setStatus("");
  addMessage("user", message);
  const reply = addMessage("assistant", "");
  reply.dataset.state = "streaming";
  reply.setAttribute("aria-busy", "true");
  const content = reply.querySelector(".content");
  const controller = new AbortController();
  state.turn = controller;
  $("send").hidden = true;
  $("stop").hidden = false;
  const started = performance.now();
  let answer = null;
  let spoken = false;
  try {
    const response = await api("/api/chat/respond", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ message, mode: $("mode").value }),
      signal: controller.signal,
    });
    if (!response.ok) {
      reply.remove();
      await explain(response);
      return;
    }
    if (!(response.headers.get("Content-Type") || "").includes("text/event-stream")) {
      answer = await response.json();
      content.textContent = answer.response || "";
    } else {
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      reading: for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        let events;
        [events, buffer] = takeEvents(buffer + decoder.decode(value, { stream: true }));
        for (const data of events) {
          if (data === "[DONE]") break reading;
          const frame = JSON.parse(data);
          if (typeof frame.delta === "string") content.textContent += frame.delta;
          // Each sentence is spoken as soon as it has ended, while the rest is written.
          if (typeof frame.sentence === "string" && speakSentence(frame.sentence, !spoken)) {
            spoken = true;
          }
          if (frame.done) answer = frame;
          if (frame.error) throw new Error(frame.error.message || "the answer broke off");
        }
      }
      if (answer?.response) content.textContent = answer.response;
    }
    describe(reply, answer, performance.now() - started);
    reply.dataset.state = "done";
    if (!spoken) speak(content.textContent);
  } catch (error) {
    if (controller.signal.aborted) {
      reply.dataset.state = "stopped";
      const meta = document.createElement("p");
      meta.className = "meta";
      meta.textContent = "stopped";
      reply.append(meta);
    } else {
      reply.dataset.state = "failed";
      setStatus(`The reply broke off (${error.message}). Try again.`, "error");
    }
  } finally {
    reply.removeAttribute("aria-busy");
    state.turn = null;
    $("send").hidden = false;
    $("stop").hidden = true;
  }
}

// --- Voice --------------------------------------------------------------------------------

// Queues one sentence; the first of a reply interrupts whatever was being said.
function speakSentence(text, first) {
  if (!$("speak").checked || !("speechSynthesis" in window) || !text.trim()) return false;
  if (first) speechSynthesis.cancel();
  speechSynthesis.speak(new SpeechSynthesisUtterance(text.trim()));
  return true;
}

function speak(text) {
  if (!$("speak").checked || !("speechSynthesis" in window) || !text) return;
  speechSynthesis.cancel();
  speechSynthesis.speak(new SpeechSynthesisUtterance(text));
}

function setUpVoice() {
  if ("speechSynthesis" in window) {
    $("speak-toggle").hidden = false;
    $("speak").checked = sessionStorage.getItem(SPEAK_KEY) === "on";
    $("speak").addEventListener("change", () => {
      sessionStorage.setItem(SPEAK_KEY, $("speak").checked ? "on" : "off");
      if (!$("speak").checked) speechSynthesis.cancel();
    });
  }
  const Recognition = window.SpeechRecognition || window.webkitSpeechRecognition;
  if (!Recognition) return;
  const mic = $("mic");
  mic.hidden = false;
  let listening = null;
  mic.addEventListener("click", () => {
    if (listening) return listening.stop();
    listening = new Recognition();
    listening.lang = document.documentElement.lang || "en";
    listening.interimResults = false;
    listening.onresult = (event) => {
      const said = event.results[0][0].transcript.trim();
      if (said) send(said);
    };
    listening.onerror = (event) => setStatus(`The microphone didn't work (${event.error}).`, "error");
    listening.onend = () => {
      listening = null;
      mic.setAttribute("aria-pressed", "false");
      mic.textContent = "Speak";
    };
    mic.setAttribute("aria-pressed", "true");
    mic.textContent = "Listening…";
    listening.start();
  });
}

// --- Wiring -------------------------------------------------------------------------------

function start() {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value.trim());
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const message = $("message").value.trim();
    if (!message || state.turn || $("send").disabled) return;
    $("message").value = "";
    send(message);
  });
  // Enter sends, Shift+Enter starts a new line.
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => state.turn?.abort());
  $("clear").addEventListener("click", clearHistory);
  $("signout").addEventListener("click", () => showSignIn("Signed out."));
  $("mode").value = sessionStorage.getItem(MODE_KEY) || "auto";
  $("mode").addEventListener("change", () => sessionStorage.setItem(MODE_KEY, $("mode").value));
  setUpVoice();
  takeTokenFromFragment();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else showSignIn();
}

start();
