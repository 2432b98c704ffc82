// The c10k-lab browser client: PROTOCOL.md over WebSocket, in plain JavaScript.
//
// One text message is one protocol frame, the same JSON as a line over TCP. The client keeps
// its nickname, room and a session key in sessionStorage (one tab, one session), so a reload or
// a lost connection comes back to the same place: it reconnects with backoff (250 ms, doubling
// up to 8 s, with jitter so that a thousand tabs do not return at once) and joins again. The
// session key (`/ws?session=KEY`) lets the server hand the nickname back from the tab's own
// previous connection (which may still hold it on a node that died), and lets a load balancer
// send the tab to the same node every time.
//
// Heartbeat: a `ping` every 20 s keeps the server's --idle-timeout (120 s by default) and any
// proxy's read timeout from closing a quiet tab; no answer for 30 s means the connection is
// dead though the browser has not noticed, and the client reconnects.
"use strict";

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 8000;
const PING_EVERY_MS = 20000;
const DEAD_AFTER_MS = 30000;
const ROOMS_EVERY_MS = 15000;
const MAX_LOG = 500;

// Error codes (PROTOCOL.md, section 5) in words a person understands.
const ERRORS = {
  bad_request: "the server did not understand that",
  unknown_type: "the server does not know that request",
  not_joined: "join a room first",
  already_joined: "you are already in the chat",
  bad_nickname: "a nickname is 1 to 32 characters, without spaces",
  bad_room: "a room name is 1 to 32 characters, without spaces",
  nickname_taken: "that nickname is taken",
  no_such_user: "nobody by that name is online",
  rate_limited: "you are sending too fast; wait a moment",
  unavailable: "the chat is briefly unavailable; try again in a moment",
  line_too_long: "that message is too long",
  server_full: "the server is full right now",
  idle_timeout: "you were disconnected after a long silence",
  shutting_down: "the server is restarting",
};

const $ = (id) => document.getElementById(id);
const saved = window.sessionStorage;

const state = {
  socket: null,
  session: saved.getItem("c10k.session") || newSessionKey(),
  nickname: saved.getItem("c10k.nickname") || "",
  room: saved.getItem("c10k.room") || "",
  joined: false,       // a `welcome` arrived on the current socket
  restoring: false,    // joining again after a reload or a lost connection
  leaving: false,      // the person pressed Leave: no reconnect
  retry: FIRST_RETRY_MS,
  retryTimer: null,
  members: [],
  privateTo: null,
  lastHeard: 0,
  lastPing: 0,
};
saved.setItem("c10k.session", state.session);

function newSessionKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function words(code, fallback) {
  return ERRORS[code] || fallback || code;
}

// ---- the connection ----------------------------------------------------------------------

function connect() {
  clearTimeout(state.retryTimer);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/ws?session=${state.session}`);
  state.socket = socket;
  state.joined = false;
  setStatus("connecting");
  socket.onopen = () => {
    state.lastHeard = Date.now();
    send({ type: "join", nickname: state.nickname, room: state.room });
  };
  socket.onmessage = (event) => {
    if (socket !== state.socket) return; // a socket we gave up on
    state.lastHeard = Date.now();
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (e) {
      return notice(`the server sent something unreadable`);
    }
    handle(frame);
  };
  socket.onclose = (event) => {
    if (socket !== state.socket) return;
    lost(event.code, event.reason);
  };
}

// Lets go of the current socket without the reconnect that its close would start.
function drop() {
  const socket = state.socket;
  state.socket = null;
  if (socket) socket.close();
}

function send(request) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify(request));
    return true;
  }
  return false;
}

// The socket is gone: back to the login form if that was the person's choice or the join was
// refused, else reconnect with backoff and join again.
function lost(code, reason) {
  state.socket = null;
  const wasJoined = state.joined;
  state.joined = false;
  if (state.leaving || !state.nickname) {
    state.leaving = false;
    return showLogin("");
  }
  const delay = Math.round(state.retry * (0.8 + Math.random() * 0.4));
  state.retry = Math.min(state.retry * 2, MAX_RETRY_MS);
  state.restoring = true;
  const why = reason ? words(reason, reason) : "the connection was lost";
  if (wasJoined) notice(`${why}; reconnecting…`);
  setStatus(`reconnecting in ${(delay / 1000).toFixed(1)} s`);
  state.retryTimer = setTimeout(connect, delay);
}

// A connection that stopped answering (a dead network says nothing) is dropped by hand.
setInterval(() => {
  const socket = state.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const now = Date.now();
  if (now - state.lastHeard > DEAD_AFTER_MS) {
    drop();
    return lost(1006, "");
  }
  if (now - state.lastPing >= PING_EVERY_MS) {
    state.lastPing = now;
    send({ type: "ping", id: "heartbeat" });
  }
}, 1000);

// The room list (with member counts) is asked for: now and then, and soon after someone
// arrives or leaves (once for a burst of them).
setInterval(() => {
  if (state.joined) send({ type: "list_rooms" });
}, ROOMS_EVERY_MS);

let roomsTimer = null;
function refreshRooms() {
  if (roomsTimer) return;
  roomsTimer = setTimeout(() => {
    roomsTimer = null;
    if (state.joined) send({ type: "list_rooms" });
  }, 300);
}

// ---- what the server says ------------------------------------------------------------------

function handle(frame) {
  switch (frame.type) {
    case "welcome":
      state.joined = true;
      state.retry = FIRST_RETRY_MS;
      enter(frame.nickname, frame.room, frame.users);
      notice(state.restoring ? `back in ${frame.room}` : `you joined ${frame.room}`);
      state.restoring = false;
      send({ type: "list_rooms" });
      break;
    case "room":
      enter(state.nickname, frame.room, frame.users);
      notice(`you are now in ${frame.room}`);
      send({ type: "list_rooms" });
      break;
    case "joined":
      setMembers([...state.members, frame.nickname]);
      notice(`${frame.nickname} joined`);
      refreshRooms();
      break;
    case "left":
      setMembers(state.members.filter((m) => m !== frame.nickname));
      notice(`${frame.nickname} left`);
      refreshRooms();
      break;
    case "renamed":
      if (frame.from === state.nickname) remember(frame.to, state.room);
      setMembers(state.members.map((m) => (m === frame.from ? frame.to : m)));
      notice(`${frame.from} is now ${frame.to}`);
      break;
    case "broadcast":
      message(frame.from, frame.content, frame.ts, null);
      break;
    case "private":
      message(frame.from, frame.content, frame.ts, frame.to);
      break;
    case "users":
      if (frame.room === state.room) setMembers(frame.users);
      break;
    case "rooms":
      showRooms(frame.rooms);
      break;
    case "bye":
      state.leaving = true;
      break;
    case "error":
      refused(frame);
      break;
    default: // pong, and anything newer than this client
      break;
  }
}

function refused(frame) {
  const text = words(frame.code, frame.message);
  if (!state.joined) {
    if (frame.code === "unavailable") {
      // The cluster cannot be reached: ask again after a while, on the same socket.
      setStatus("waiting for the server");
      state.retryTimer = setTimeout(
        () => send({ type: "join", nickname: state.nickname, room: state.room }),
        state.retry,
      );
      state.retry = Math.min(state.retry * 2, MAX_RETRY_MS);
      return;
    }
    if (["nickname_taken", "bad_nickname", "bad_room"].includes(frame.code)) {
      forget();
      drop();
      return showLogin(text);
    }
  }
  notice(text, "error");
}

// ---- the page --------------------------------------------------------------------------------

function remember(nickname, room) {
  state.nickname = nickname;
  state.room = room;
  saved.setItem("c10k.nickname", nickname);
  saved.setItem("c10k.room", room);
  $("me").textContent = `as ${nickname}`;
  $("room-name").textContent = room;
  document.title = `${room} · c10k chat`;
}

function forget() {
  saved.removeItem("c10k.nickname");
  saved.removeItem("c10k.room");
}

function enter(nickname, room, users) {
  remember(nickname, room);
  setMembers(users);
  $("login").hidden = true;
  $("chat").hidden = false;
  setStatus("online");
  $("text").focus();
}

function showLogin(error) {
  clearTimeout(state.retryTimer);
  $("chat").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = error;
  $("nickname").value = state.nickname;
  $("room").value = state.room || "lobby";
  $("nickname").focus();
}

function setStatus(text) {
  const status = $("status");
  status.textContent = text;
  status.dataset.state = text === "online" ? "online" : "offline";
}

function setMembers(members) {
  state.members = [...new Set(members)].sort();
  const list = $("members");
  list.replaceChildren(
    ...state.members.map((name) => {
      const item = document.createElement("li");
      item.textContent = name;
      if (name === state.nickname) {
        item.classList.add("self");
      } else {
        item.tabIndex = 0;
        item.onclick = () => writeTo(name === state.privateTo ? null : name);
      }
      if (name === state.privateTo) item.classList.add("selected");
      return item;
    }),
  );
  $("member-count").textContent = `(${state.members.length})`;
}

function showRooms(rooms) {
  $("rooms").replaceChildren(
    ...rooms.map(({ name, users }) => {
      const item = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = name;
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = users;
      item.append(label, count);
      if (name === state.room) item.classList.add("current");
      else item.onclick = () => send({ type: "join_room", room: name });
      return item;
    }),
  );
}

function writeTo(name) {
  state.privateTo = name;
  const chip = $("private-to");
  chip.hidden = !name;
  chip.textContent = name ? `to ${name} ✕` : "";
  setMembers(state.members);
  document.body.classList.remove("side-open");
  $("text").focus();
}

// Adds an entry to the log, filled by `fill`; follows the conversation if the reader was at
// its end (or wrote it), and keeps the page's memory bounded.
function entry(kind, fill, own) {
  const log = $("log");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const item = document.createElement("li");
  item.className = kind;
  fill(item);
  log.append(item);
  while (log.children.length > MAX_LOG) log.firstChild.remove();
  if (atBottom || own) log.scrollTop = log.scrollHeight;
}

function message(from, content, ts, to) {
  const own = from === state.nickname;
  entry(to ? "msg private" : "msg", (item) => {
    if (own) item.classList.add("own");
    item.dataset.from = from;
    const head = document.createElement("div");
    head.className = "head";
    const who = document.createElement("span");
    who.className = "from";
    who.textContent = to ? `${from} → ${to}` : from;
    const when = document.createElement("time");
    const date = new Date(ts);
    when.dateTime = date.toISOString();
    when.title = date.toLocaleString();
    when.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    head.append(who, when);
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = content;
    item.append(head, text);
  }, own);
}

function notice(text, kind) {
  entry(kind === "error" ? "notice error" : "notice", (item) => {
    item.textContent = text;
  });
}

// ---- what the person does --------------------------------------------------------------------

$("login-form").onsubmit = (event) => {
  event.preventDefault();
  state.nickname = $("nickname").value.trim();
  state.room = $("room").value.trim() || "lobby";
  state.restoring = false;
  state.leaving = false;
  state.retry = FIRST_RETRY_MS;
  $("login-error").textContent = "";
  $("log").replaceChildren();
  drop();
  connect();
};

$("composer").onsubmit = (event) => {
  event.preventDefault();
  const box = $("text");
  const text = box.value.trim();
  if (!text) return;
  if (!send(request(text))) return notice("not connected; your message was not sent", "error");
  box.value = "";
  box.style.height = "";
};

// `/nick`, `/msg`, `/join` and `/quit`, as in the terminal client; anything else is a message.
function request(text) {
  const [command, ...rest] = text.split(/\s+/);
  switch (command) {
    case "/nick":
      return { type: "nick", nickname: rest[0] || "" };
    case "/join":
      return { type: "join_room", room: rest[0] || "" };
    case "/msg":
      return { type: "private", to: rest[0] || "", content: rest.slice(1).join(" ") };
    case "/quit":
      state.leaving = true;
      forget();
      return { type: "quit" };
    default:
      return state.privateTo
        ? { type: "private", to: state.privateTo, content: text }
        : { type: "message", content: text };
  }
}

$("text").onkeydown = (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
};

$("text").oninput = (event) => {
  const box = event.target;
  box.style.height = "";
  box.style.height = `${Math.min(box.scrollHeight, 160)}px`;
};

$("private-to").onclick = () => writeTo(null);

$("room-form").onsubmit = (event) => {
  event.preventDefault();
  const room = $("new-room").value.trim();
  if (room && send({ type: "join_room", room })) $("new-room").value = "";
  document.body.classList.remove("side-open");
};

$("toggle-side").onclick = () => document.body.classList.toggle("side-open");

$("leave").onclick = () => {
  state.leaving = true;
  forget();
  if (!send({ type: "quit" })) showLogin("");
};

// A reload (or a new page in this tab) comes back to where the tab was.
if (state.nickname && state.room) {
  state.restoring = true;
  $("login").hidden = true;
  $("chat").hidden = false;
  remember(state.nickname, state.room);
  connect();
} else {
  showLogin("");
}
