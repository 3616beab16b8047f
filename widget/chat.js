/* refdesk patron widget; protocol in docs/widget-protocol.md. No globals, no build step. */
(() => {
'use strict';
const $ = (id) => document.getElementById(id);
const root = $('refdesk');
const D = root ? root.dataset : {};
const ALL = window.REFDESK_STRINGS || {};
const asked = D.lang || document.documentElement.lang;
const lang = ALL[asked] ? asked : 'en';
const S = Object.assign({ status: {}, endedBy: {}, text: {}, sys: {}, err: {} }, ALL.en, ALL[lang]);
// The error pages (unknown queue, not available) have only their headings to translate.
for (const e of document.querySelectorAll('[data-i18n-page]')) e.textContent = S[e.dataset.i18nPage] || e.textContent;
if (!root) return;
const KEY = 'refdesk:' + (D.queue || '');
const log = $('rd-log'), form = $('rd-form'), input = $('rd-input');
const endBtn = $('rd-end'), newBtn = $('rd-new'), conn = $('rd-conn'), alertBox = $('rd-alert');
const typingEl = $('rd-typing'), over = $('rd-over'), overTitle = $('rd-over-title');
const mail = $('rd-mail'), mailForm = $('rd-mail-form'), txForm = $('rd-tx-form');
const txOpen = $('rd-tx-open'), txEmail = $('rd-tx-email');
const rate = $('rd-rate'), rateForm = $('rd-rate-form'), rateSend = $('rd-rate-send');

for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = S[e.dataset.i18n] || e.textContent;
for (const e of document.querySelectorAll('[data-i18n-label]')) e.ariaLabel = S[e.dataset.i18nLabel] || e.ariaLabel;
$('rd-greeting').textContent = D.greeting || S.greeting;

// The admin's accent colour, darkened until white text on it reaches 4.5:1 (WCAG AA).
if (/^#([0-9a-f]{3}){1,2}$/i.test(D.color || '')) {
  const h = D.color.length === 4 ? D.color.replace(/[0-9a-f]/gi, '$&$&') : D.color;
  let rgb = [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
  const lum = (c) => c.reduce((s, v, i) => {
    v /= 255;
    return s + [0.2126, 0.7152, 0.0722][i] * (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  }, 0);
  while (1.05 / (lum(rgb) + 0.05) < 4.6) rgb = rgb.map((v) => Math.floor(v * 0.92));
  for (const p of ['accent', 'me']) {
    document.documentElement.style.setProperty('--' + p, `rgb(${rgb})`);
    document.documentElement.style.setProperty(`--${p}-fg`, '#fff');
  }
}

// Local links stand open beside the chat on wide screens, folded below it on phones.
const links = $('rd-links'), wide = matchMedia('(min-width: 60rem)');
const fit = () => links && (links.open = wide.matches);
fit();
wide.addEventListener?.('change', fit);

let st = { resume: null, chat: null, lastSeq: 0 };
const seen = new Set();    // seqs shown: never show one twice
const pending = new Map(); // client id -> {id, text}, not yet acknowledged
const mine = new Map();    // client id -> element of the patron's own message
let t = null, ready = false, stopped = false, ended = false, wantEnd = false, wantTx = null;
let attempt = 0, timer = 0, rejected = 0, gotError = false, gotFrame = false;
let wsWorked = false, wsFails = 0, useLp = /[?&]transport=lp(&|$)/.test(location.search);
let typing = 'paused', typingTimer = 0, theirTimer = 0;
let status = D.status, statusText = '', position = null, offered = '', answered = false;
let mailOpen = false, wasMailing = false, sent = false, txShown = false;
let wantRate = null; // a rating frame not yet answered
const RATE_ERRORS = new Set(['bad_rating', 'comment_too_long', 'bad_comment', 'already_rated',
  'not_ended', 'feedback_off', 'wrong_chat', 'unknown_chat', 'rate_limited']);

const isNum = (n) => typeof n === 'number' && isFinite(n);
// A template's {fields} filled from a line's params (values are inserted as text).
const fill = (tpl, params) => tpl.replace(/\{(\w+)\}/g, (all, k) =>
  params && typeof params[k] === 'string' ? params[k] : all);
// A line the server wrote, in the page's language when its code is known; lines without a
// code (texts an admin wrote) are shown as they are.
const lineText = (m) => (m.code && S.sys[m.code] ? fill(S.sys[m.code], m.params) : m.text);
// An error in the page's language: the server's English text only on an English page.
const errText = (m, fallback) => (m.code && S.err[m.code]) || (m.code === 'banned' || lang === 'en'
  ? m.text : '') || fallback;
const save = () => {
  try {
    sessionStorage.setItem(KEY, JSON.stringify({ resume: st.resume, last_seq: st.lastSeq, chat: st.chat,
      pending: [...pending.values()], lp: useLp }));
  } catch (e) { /* storage blocked in a third-party iframe: the chat still works */ }
};
const forget = () => { try { sessionStorage.removeItem(KEY); } catch (e) { /* blocked */ } };
const rid = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
};
const send = (obj) => ready && t ? t.send(obj) : false;
const okEmail = (s) => /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/.test(s);
const post = (url, obj) => fetch(url, { method: 'POST', cache: 'no-store',
  headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(obj) });

// http(s) URLs become links, built with DOM APIs only (text is never parsed as HTML).
function linkify(p, text) {
  const re = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  let last = 0, m;
  while ((m = re.exec(text))) {
    let url = m[0];
    while (/[.,;:!?'")\]}>]$/.test(url)) {
      if (url.endsWith(')') && url.split('(').length >= url.split(')').length) break;
      url = url.slice(0, -1);
    }
    let href = null;
    try { const u = new URL(url); if (/^https?:$/.test(u.protocol)) href = u.href; } catch (e) { /* no */ }
    if (!href) continue;
    const a = el('a', null, url);
    Object.assign(a, { href, target: '_blank', rel: 'noopener noreferrer' });
    p.append(text.slice(last, m.index), a);
    re.lastIndex = last = m.index + url.length;
  }
  p.append(text.slice(last));
}

function bubble(kind, name, text, ts, links, edited) {
  const box = el('div', 'rd-msg rd-' + kind);
  const meta = box.appendChild(el('div', 'rd-meta'));
  meta.appendChild(el('span', 'rd-name', name));
  const d = ts ? new Date(ts) : new Date();
  if (!isNaN(d)) {
    meta.appendChild(el('time', null, d.toLocaleTimeString(lang, { hour: 'numeric', minute: '2-digit' })))
      .dateTime = d.toISOString();
  }
  if (edited) markEdited(box);
  const p = box.appendChild(el('p', 'rd-text'));
  if (links) linkify(p, String(text ?? '')); else p.textContent = text ?? '';
  return box;
}

// A line the librarian corrected after sending it: say so next to its time.
function markEdited(box) {
  const meta = box.querySelector('.rd-meta');
  if (meta && !meta.querySelector('.rd-edited')) meta.appendChild(el('span', 'rd-edited', '(' + S.edited + ')'));
}

// Insert in seq order; pending messages stay last; local notes are barriers.
function add(node, seq) {
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
  let ref = null;
  if (isNum(seq)) {
    if (!node.dataset.seq) node.dataset.seq = seq;
    for (let c = log.lastElementChild; c; c = c.previousElementSibling) {
      const cs = c.dataset.seq;
      if (cs === undefined ? !c.classList.contains('rd-pending') : +cs <= seq) break;
      ref = c;
    }
  }
  log.insertBefore(node, ref);
  if (atEnd || node.classList.contains('rd-patron')) log.scrollTop = log.scrollHeight;
  view();
}

// A server event with a seq: false if it was already shown.
function fresh(seq) {
  if (!isNum(seq)) return true;
  if (seen.has(seq)) return false;
  seen.add(seq);
  st.lastSeq = Math.max(st.lastSeq, seq);
  return true;
}

function delivered(id, seq) {
  const box = mine.get(id);
  pending.delete(id);
  save();
  if (!box) return void (isNum(seq) && seen.add(seq));
  box.classList.remove('rd-pending');
  box.querySelector('.rd-tag')?.remove();
  if (!isNum(seq) || box.dataset.seq) return;
  seen.add(seq);
  box.dataset.seq = seq;
  if (+box.previousElementSibling?.dataset.seq > seq) { box.remove(); add(box, seq); }
}

function queueMessage(text, id) {
  const box = bubble('patron rd-pending', S.you, text);
  box.dataset.id = id;
  box.firstChild.appendChild(el('span', 'rd-tag', S.sending));
  pending.set(id, { id, text });
  mine.set(id, box);
  add(box);
  save();
  send({ type: 'message', id, text });
}

const says = (s) => D['text' + s[0].toUpperCase() + s.slice(1)] || S.text[s] || '';
const say = (id, text) => { $(id).textContent = text; };

// Everything that depends on the queue's status and the chat's stage.
// The stage goes on <main> as classes (rd-ended, rd-mailing...) that chat.css shows and
// hides parts by.
function view() {
  $('rd-status').dataset.status = status;
  say('rd-status-text', S.status[status] || status);
  const empty = !log.querySelector('.rd-msg');
  const forced = status === 'offline' && !answered && !ended;
  const mailing = !stopped && (forced || mailOpen);
  // What the patron already wrote becomes the start of the emailed question.
  if (mailing && !wasMailing && !$('rd-q').value) {
    $('rd-q').value = [...log.querySelectorAll('.rd-patron .rd-text')].map((p) => p.textContent).join('\n\n');
  }
  wasMailing = mailing;
  const stage = { mailing, forced, ended, stopped, empty, txopen: txShown };
  for (const k in stage) root.classList.toggle('rd-' + k, stage[k]);
  say('rd-avail', status === 'available' && !ended ? says('available') : '');
  const live = !(ended || stopped || answered || sent);
  const head = live ? offered || statusText || (status !== 'available' ? says(status) : '') : '';
  const pos = live && position > 0 ? S.position.replace('{n}', position) : '';
  say('rd-notice-text', [head, pos].filter(Boolean).join(' '));
  $('rd-mail-open').hidden = mailing || !head || status === 'available' && !offered;
  txOpen.ariaExpanded = txShown;
}

function showTyping(on) {
  clearTimeout(theirTimer);
  typingEl.textContent = on ? S.typing : '';
  typingEl.hidden = !on;
  if (on) theirTimer = setTimeout(showTyping, 30000, false);
}

function setTyping(state) {
  clearTimeout(typingTimer);
  if (state === 'composing') typingTimer = setTimeout(setTyping, 5000, 'paused');
  if (state !== typing) send({ type: 'typing', state });
  typing = state;
}

const drop = () => { clearTimeout(timer); t?.close(); t = null; ready = false; say('rd-conn', ''); };

// The chat is over (ended or banned): lock the form, show the panel. An ended chat keeps
// its connection for live status and a transcript request; a banned one closes it.
function finish(title, detail, canRestart) {
  const f = document.activeElement;
  const lost = !f || f === document.body || form.contains(f) || f === endBtn || mail.contains(f);
  if (canRestart) ended = true; else { stopped = true; drop(); }
  showTyping(false);
  for (const id of pending.keys()) {
    const tag = mine.get(id)?.querySelector('.rd-tag');
    if (tag) tag.textContent = S.notSent;
  }
  pending.clear();
  overTitle.textContent = title;
  say('rd-over-detail', detail || '');
  over.hidden = false;
  view();
  log.scrollTop = log.scrollHeight;
  if (lost) (canRestart ? (rate.hidden ? newBtn : $('rd-rate-1')) : overTitle).focus();
}

// The rating went in (or had gone in before): the form gives way to a thank-you.
function rated(text) {
  wantRate = null;
  rateSend.disabled = false;
  // The focus was in the form (or fell to the body when its button was disabled).
  const f = document.activeElement;
  const lost = !f || f === document.body || rate.contains(f);
  rate.hidden = true;
  say('rd-rate-done', text);
  if (lost) $('rd-rate-done').focus();
}

// A ban names the address the service saw (to quote in an appeal) and where to appeal,
// as a mail link. Both come from the server: text only, and the link only for a plain
// address (no scheme, query or markup can ride on it).
function banDetails(m) {
  const address = typeof m.address === 'string' ? m.address : '';
  const appeal = typeof m.appeal === 'string' && /^[\w.+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/.test(m.appeal) ? m.appeal : '';
  say('rd-ban-address', address);
  const a = $('rd-ban-appeal');
  a.textContent = appeal;
  if (appeal) a.href = 'mailto:' + appeal; else a.removeAttribute('href');
  $('rd-ban').hidden = !(address || appeal);
}

const txSay = (ok, err) => { say('rd-tx-ok', ok); say('rd-tx-err', err); txEmail.ariaInvalid = !!err; };

const handlers = {
  welcome(m) {
    const changed = m.resumed === false || (st.chat != null && m.chat !== st.chat);
    if (changed && ended) {
      // An ended chat reopened only to ask for a transcript has expired meanwhile.
      wantTx = null;
      txSay('', S.txGone);
      return drop();
    }
    if (changed && (seen.size || st.lastSeq)) {
      seen.clear();
      st.lastSeq = 0;
      log.insertBefore(el('p', 'rd-note', S.newChatStarted), log.querySelector('.rd-pending'));
    }
    st.resume = m.resume || null;
    st.chat = m.chat ?? null;
    ready = true;
    attempt = rejected = 0;
    conn.textContent = '';
    status = m.status || status;
    save();
    for (const p of pending.values()) send({ type: 'message', id: p.id, text: p.text });
    if (wantEnd) wantEnd = !send({ type: 'end' });
    if (wantTx) send({ type: 'transcript', email: wantTx, lang });
    if (wantRate) send(wantRate);
    view();
  },
  ack: (m) => delivered(m.id, m.seq),
  message(m) {
    if (!fresh(m.seq)) return;
    let box;
    if (m.from === 'patron') {
      if (m.id && mine.has(m.id)) return delivered(m.id, m.seq);
      box = bubble('patron', S.you, m.text, m.ts);
      if (m.id) mine.set(m.id, box);
    } else if (m.from === 'operator') {
      box = bubble('operator', m.name || S.librarian, m.text, m.ts, true, m.edited === true);
      showTyping(false);
      answered = true;
    } else {
      box = bubble('system', m.name || S.system, lineText(m), m.ts);
    }
    add(box, m.seq);
    save();
  },
  // The librarian corrected a line already shown: new text in place, marked as edited.
  correction(m) {
    if (!isNum(m.seq) || typeof m.text !== 'string') return;
    const box = log.querySelector('.rd-operator[data-seq="' + m.seq + '"]');
    const p = box && box.querySelector('.rd-text');
    if (!p) return;
    p.textContent = '';
    linkify(p, m.text);
    markEdited(box);
  },
  typing: (m) => m.from !== 'patron' && showTyping(m.state === 'composing'),
  status(m) { status = m.status || status; statusText = m.text || ''; position = m.position; view(); },
  offer_email(m) { offered = (m.code ? lineText(m) : lang === 'en' && m.text) || S.text.offer; view(); },
  ended(m) {
    if (!fresh(m.seq)) return;
    add(bubble('system', S.system, lineText(m) || S.endedBy[m.by] || S.ended), m.seq);
    rate.hidden = m.feedback !== true;
    save();
    finish(S.ended, '', true);
  },
  banned(m) { forget(); banDetails(m); finish(S.bannedTitle, m.text || S.banned, false); },
  rating_ok() { rated(S.rateThanks); },
  transcript_ok(m) { wantTx = null; txSay(S.txOk.replace('{email}', m.email || txEmail.value), ''); },
  error(m) {
    gotError = true;
    if (wantRate && RATE_ERRORS.has(m.code)) {
      wantRate = null;
      rateSend.disabled = false;
      if (m.code === 'already_rated') return rated(errText(m, S.rateThanks));
      return say('rd-rate-err', errText(m, S.error));
    }
    if (wantTx) {
      wantTx = null;
      if (m.code === 'bad_email') return txSay('', errText(m, S.badEmail));
      txSay('', '');
    }
    alertBox.textContent = errText(m, S.error);
  },
};

// Transports: call on.open() once, on.frame(obj) per server frame, on.close() once.
function viaWs(on) {
  const url = new URL(D.wsPath, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const s = new WebSocket(url.href);
  const quit = () => { clearTimeout(hung); s.onclose = null; s.close(); };
  // A handshake that hangs (some proxies) counts as a failed one.
  const hung = setTimeout(() => { quit(); on.close(); }, 10000);
  s.onopen = () => { clearTimeout(hung); on.open(); };
  s.onmessage = (e) => { let m; try { m = JSON.parse(e.data); } catch (x) { return; } on.frame(m); };
  s.onclose = () => { clearTimeout(hung); on.close(); };
  return { send: (o) => s.readyState === 1 && (s.send(JSON.stringify(o)), true), close: quit };
}

// Long-poll: POST hello opens a session, POSTs carry frames (in order), GETs bring frames.
function viaLp(on) {
  const base = new URL(D.lpPath, location.href).href;
  let sid = null, dead = false, chain = Promise.resolve(), ctl = null;
  const fail = () => { if (!dead) { dead = true; ctl?.abort(); on.close(); } };
  const deliver = (j) => { for (const f of (j && j.frames) || []) if (!dead) on.frame(f); };
  async function poll() {
    while (!dead) {
      ctl = new AbortController();
      const stop = setTimeout(() => ctl.abort(), 40000), t0 = Date.now();
      try {
        const r = await fetch(base + '/' + sid, { cache: 'no-store', signal: ctl.signal });
        const j = r.ok ? await r.json() : null;
        if (!j) return fail();
        deliver(j);
        if (j.closed) return fail();
        if (!j.frames.length && Date.now() - t0 < 500) await new Promise((ok) => setTimeout(ok, 1000));
      } catch (e) { return fail(); } finally { clearTimeout(stop); }
    }
  }
  setTimeout(() => dead || on.open());
  return {
    send(o) {
      if (dead) return false;
      chain = chain.then(async () => {
        if (dead) return;
        try {
          if (sid) return (await post(base + '/' + sid, o)).ok || fail();
          const r = await post(base, o), j = await r.json().catch(() => null);
          deliver(j);
          if (!r.ok || !j || typeof j.session !== 'string') return fail();
          sid = encodeURIComponent(j.session);
          poll();
        } catch (e) { fail(); }
      });
      return true;
    },
    close() { dead = true; ctl?.abort(); },
  };
}

function connect() {
  clearTimeout(timer);
  t?.close();
  ready = gotError = gotFrame = false;
  const lp = useLp || typeof WebSocket === 'undefined';
  let me = null;
  // Callbacks of a transport that has been replaced do nothing.
  const on = {
    open: () => me === t && me.send(st.resume ? { type: 'hello', resume: st.resume, last_seq: st.lastSeq }
      : { type: 'hello', last_seq: 0 }),
    frame(m) {
      if (me !== t) return;
      gotFrame = true;
      wsWorked ||= !lp;
      if (m && Object.prototype.hasOwnProperty.call(handlers, m.type)) handlers[m.type](m);
    },
    close() {
      if (me !== t) return;
      // Refused twice with an error before any welcome: the token is dead, start over.
      if (!ready && gotError && st.resume && ++rejected >= 2) st.resume = null;
      // A socket that never brought a frame, twice in a row: WebSockets are blocked.
      if (!lp && !gotFrame && !wsWorked && ++wsFails >= 2) { useLp = true; attempt = 0; save(); }
      t = null;
      ready = false;
      retry();
    },
  };
  try { me = t = (lp ? viaLp : viaWs)(on); } catch (e) { me = t = {}; on.close(); }
}

function retry() {
  if (stopped || (ended && !wantTx && !wantRate)) return void say('rd-conn', '');
  say('rd-conn', S.reconnecting);
  timer = setTimeout(connect, useLp && !attempt ? 0 : Math.min(1000 * 2 ** attempt, 15000));
  attempt++;
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  // Control characters (except tab and newline) cannot travel over XMPP: drop them.
  const text = input.value.replace(/[\0-\x08\x0B\x0C\x0E-\x1F\x7F\uFFFE\uFFFF]/g, '').trim();
  if (ended || stopped || !text) return;
  alertBox.textContent = '';
  input.value = '';
  clearTimeout(typingTimer);
  typing = 'paused';
  queueMessage(text, rid());
  input.focus();
});

input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    form.requestSubmit();
  }
});
input.addEventListener('input', () => setTyping(input.value.trim() ? 'composing' : 'paused'));

endBtn.addEventListener('click', () => { if (!ended && !stopped && !send({ type: 'end' })) wantEnd = true; });

newBtn.addEventListener('click', () => {
  drop();
  forget();
  st = { resume: null, chat: null, lastSeq: 0 };
  for (const x of [seen, pending, mine]) x.clear();
  for (const c of [...log.children]) if (c.id !== 'rd-intro') c.remove();
  alertBox.textContent = offered = statusText = '';
  txSay('', '');
  over.hidden = rate.hidden = true;
  rateForm.reset();
  say('rd-rate-err', '');
  say('rd-rate-done', '');
  wantRate = null;
  ended = wantEnd = answered = txShown = false;
  wantTx = position = null;
  attempt = rejected = 0;
  view();
  input.focus();
  connect();
});

// The email question form (offline, or instead of waiting).
const field = { question: 'rd-q', email: 'rd-email', name: 'rd-name' };
const openMail = (on) => {
  mailOpen = on;
  view();
  (on ? $('rd-mail-title') : input).focus();
};
$('rd-mail-open').addEventListener('click', () => openMail(true));
$('rd-mail-back').addEventListener('click', () => openMail(false));
const fieldErr = (name, text) => {
  const id = field[name];
  $(id).ariaInvalid = true;
  say(id + '-err', text);
  $(id).focus();
};
mailForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const btn = $('rd-mail-send');
  if (btn.disabled) return;
  const body = {};
  for (const [k, id] of Object.entries(field)) {
    body[k] = $(id).value.trim();
    $(id).ariaInvalid = false;
    say(id + '-err', '');
  }
  alertBox.textContent = '';
  if (!body.question) return fieldErr('question', S.needQuestion);
  if (!okEmail(body.email)) return fieldErr('email', S.badEmail);
  btn.disabled = true;
  try {
    const r = await post(D.questionsPath, body), j = await r.json().catch(() => ({}));
    if (r.ok) {
      mailForm.hidden = true;
      say('rd-ticket', j.ticket != null ? S.ticket.replace('{ticket}', j.ticket) : '');
      $('rd-mail-done').hidden = !(sent = true);
      view();
      $('rd-mail-done').focus();
    } else if (r.status === 403) handlers.banned({ text: j.error, address: j.address, appeal: j.appeal });
    else if (r.status === 400 && field[j.field]) {
      fieldErr(j.field, (lang === 'en' && j.error) || { question: S.needQuestion, email: S.badEmail }[j.field] || S.badField);
    } else alertBox.textContent = errText({ code: j.code, text: j.error }, S.mailFailed);
  } catch (x) { alertBox.textContent = S.mailFailed; } finally { btn.disabled = false; }
});

// A copy of the transcript by email, during the chat or after it.
txOpen.addEventListener('click', () => {
  txShown = !txShown;
  view();
  if (txShown) txEmail.focus();
});
txForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const email = txEmail.value.trim();
  if (!okEmail(email)) return txSay('', S.badEmail), txEmail.focus();
  txSay(S.txSending, '');
  wantTx = email;
  // `lang`: the copy's own wording (subject, headings) comes in the page's language.
  if (!send({ type: 'transcript', email, lang }) && !t) { attempt = 0; connect(); }
});

// The end-of-chat rating: 1 to 5 and an optional comment, sent once.
rateForm.addEventListener('submit', (e) => {
  e.preventDefault();
  if (rateSend.disabled) return;
  const choice = rateForm.querySelector('input[name=rating]:checked');
  if (!choice) {
    say('rd-rate-err', S.rateNeed);
    return $('rd-rate-1').focus();
  }
  say('rd-rate-err', '');
  rateSend.disabled = true;
  wantRate = { type: 'rating', rating: +choice.value, comment: $('rd-rate-comment').value.trim() };
  if (!send(wantRate) && !t) { attempt = 0; connect(); }
});

// In an iframe, Escape asks the embedding page to close the panel (embed.js listens).
addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && parent !== window) parent.postMessage({ refdesk: 'close' }, '*');
});
addEventListener('online', () => { if (!ready && t === null && !stopped && !ended) { attempt = 0; connect(); } });

// Start. A reloaded page has an empty log, so it asks for the whole transcript (last_seq 0).
let saved = {};
try { saved = JSON.parse(sessionStorage.getItem(KEY)) || {}; } catch (e) { /* none */ }
if (typeof saved.resume === 'string' && saved.resume) {
  st.resume = saved.resume;
  st.chat = saved.chat ?? null;
}
if (saved.lp === true) useLp = true;
view();
for (const p of Array.isArray(saved.pending) ? saved.pending : []) {
  if (typeof p?.id === 'string' && typeof p.text === 'string') queueMessage(p.text, p.id);
}
connect();
})();
