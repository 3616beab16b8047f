// refdesk's operator page: starts the vendored Converse.js with settings fitted to a
// reference desk, and adds a small panel of our own (refdesk plugin below).
//
// Everything the panel does is an ordinary XMPP chat line ("!accept", "!transfer ask", ...)
// sent in the guest's chat, exactly what an operator would type in Gajim: an operator can
// switch clients mid-shift. Nothing here talks to refdesk over HTTP, and no credential is
// kept after log-out (session storage only, cleared at log-out; no "trusted device").
'use strict';

(function () {
  const settings = JSON.parse(document.getElementById('rd-operator-settings').textContent);
  const componentDomain = settings.component_domain;
  // The queues this operator may see, learnt after log-in from what the queue JIDs send
  // (their presence and contact requests): the page itself names none, so a visitor who
  // has not logged in learns nothing of the directory from it.
  const queues = [];
  const GUEST_PREFIX = 'guest-';
  const SOUND = settings.assets_path + 'sounds/msg_received.ogg';

  function bare(jid) {
    return String(jid || '').split('/')[0].toLowerCase();
  }
  function isGuest(jid) {
    const [node, domain] = bare(jid).split('@');
    return domain === componentDomain && Boolean(node) && node.startsWith(GUEST_PREFIX);
  }
  function queueOf(jid) {
    // Queue names never start with the guest prefix (the directory refuses them).
    const [node, domain] = bare(jid).split('@');
    return domain === componentDomain && node && !node.startsWith(GUEST_PREFIX) ? node : null;
  }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === 'text') node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  // The panel: queue states, the mute switch, and the commands for the current guest chat.
  const panel = el('aside', { id: 'rd-panel', 'aria-label': 'Reference desk' });
  const queueList = el('ul', { id: 'rd-queues', 'aria-label': 'Queues' });
  const alertBox = el('p', { id: 'rd-alert', role: 'status', 'aria-live': 'polite' });
  const mute = el('button', { type: 'button', id: 'rd-mute', 'aria-pressed': 'false', text: 'Mute alerts' });
  const chatTools = el('section', { id: 'rd-tools', 'aria-label': 'Chat commands', hidden: '' });
  const chatTitle = el('h2', { id: 'rd-chat', text: '' });
  const logout = el('button', { type: 'button', id: 'rd-logout', text: 'Log out' });
  logout.addEventListener('click', async () => {
    // End the XMPP session (Converse.js clears its storage), then start from a fresh page
    // so nothing of the shift stays even in memory on a shared computer.
    try {
      if (window.rdApi) await window.rdApi.user.logout();
    } finally {
      sessionStorage.clear();
      window.location.replace(window.location.pathname);
    }
  });
  panel.append(el('h1', { text: 'Reference desk' }), logout, queueList, alertBox, mute, chatTools);

  const cannedNames = el('datalist', { id: 'rd-canned-list' });
  let current = null; // the guest JID the commands act on
  let muted = false;

  async function send(text) {
    if (!current || !window.rdApi) return;
    const chat = await window.rdApi.chats.get(current);
    if (chat) await chat.sendMessage({ body: text });
  }
  function button(label, action) {
    const b = el('button', { type: 'button', text: label });
    b.addEventListener('click', action);
    return b;
  }
  function askLine(label, command, options) {
    // A labelled field plus a button: "Note: [....] [Add note]" -> "!note text".
    const id = 'rd-' + command;
    const input = el('input', { id, type: 'text', autocomplete: 'off' });
    if (options && options.list) input.setAttribute('list', id + '-list');
    const form = el('form', { class: 'rd-line' },
      el('label', { for: id, text: label }), input,
      el('button', { type: 'submit', text: options && options.button ? options.button : label }));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value && !(options && options.optional)) { input.focus(); return; }
      send(('!' + command + ' ' + value).trim());
      input.value = '';
    });
    return form;
  }
  const transferList = el('datalist', { id: 'rd-transfer-list' });
  const banLength = el('select', { id: 'rd-ban-length', 'aria-label': 'Ban length' });
  for (const [value, text] of [['', 'Group policy'], ['30d', '30 days'], ['90d', '90 days'], ['1y', '1 year']]) {
    banLength.append(el('option', { value, text }));
  }
  const banReason = el('input', { id: 'rd-ban-reason', type: 'text', autocomplete: 'off' });
  const banPolicy = el('p', { id: 'rd-ban-policy', class: 'rd-policy' });
  banReason.setAttribute('aria-describedby', 'rd-ban-policy');
  const banForm = el('form', { class: 'rd-line' },
    el('label', { for: 'rd-ban-reason', text: 'Ban reason' }), banReason, banLength,
    el('button', { type: 'submit', text: 'Ban' }), banPolicy);
  banForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const reason = banReason.value.trim();
    if (!reason) { banReason.focus(); return; }
    if (!window.confirm('Ban this patron\'s address? Length: ' + banLength.selectedOptions[0].text)) return;
    send(['!ban', banLength.value, reason].filter(Boolean).join(' '));
    banReason.value = '';
  });
  const cannedName = el('input', { id: 'rd-canned', type: 'text', autocomplete: 'off', list: 'rd-canned-list' });
  const cannedForm = el('form', { class: 'rd-line' },
    el('label', { for: 'rd-canned', text: 'Canned message' }), cannedName,
    el('button', { type: 'submit', text: 'Insert' }));
  cannedForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = cannedName.value.trim().toLowerCase();
    const text = cannedText(name);
    if (text === undefined) { alertBox.textContent = 'No canned message called "' + name + '".'; return; }
    insertText(text);
  });
  chatTools.append(
    chatTitle,
    el('div', { class: 'rd-buttons' },
      button('Accept', () => send('!accept')),
      button('Info', () => send('!info')),
      button('Links', () => send('!links')),
      button('End chat', () => send('!end'))),
    askLine('Transfer to', 'transfer', { list: true, button: 'Transfer' }), transferList,
    cannedForm, cannedNames,
    askLine('Note', 'note', { button: 'Add note' }),
    askLine('Tag', 'tag', { button: 'Add tag' }),
    askLine('Refer to email', 'refer', { optional: true, button: 'Refer' }),
    banForm,
  );

  mute.addEventListener('click', () => {
    muted = !muted;
    mute.setAttribute('aria-pressed', String(muted));
    mute.textContent = muted ? 'Unmute alerts' : 'Mute alerts';
    if (window.rdApi) {
      window.rdApi.settings.set('play_sounds', !muted);
      window.rdApi.settings.set('show_desktop_notifications', !muted);
    }
  });

  // Canned messages: the queue answers "!canned" (an ad-hoc command too) with one
  // "name: text" line each; the panel inserts the text into the message box for editing.
  const OFFER = /^New chat in .* \(([^()\s]+)\)(?: \([^)]*\))?\. /;
  const cannedTexts = new Map(); // queue -> Map(name -> text)
  const chatQueue = new Map(); // guest JID -> queue, learnt from the offer
  async function loadCanned(api, queue) {
    let result;
    try {
      result = await api.adhoc.fetchCommandForm(queue + '@' + componentDomain, 'canned');
    } catch (err) {
      return; // not an operator of this queue: no canned messages from it
    }
    const texts = new Map();
    let name = null;
    for (const line of ((result && result.note && result.note.text) || '').split('\n')) {
      const item = /^([^\s:]+): (.*)$/.exec(line);
      if (item) {
        name = item[1];
        texts.set(name, item[2]);
      } else if (name && line.startsWith('  ')) {
        texts.set(name, texts.get(name) + '\n' + line.slice(2));
      }
    }
    cannedTexts.set(queue, texts);
    const names = new Set();
    for (const t of cannedTexts.values()) for (const n of t.keys()) names.add(n);
    cannedNames.replaceChildren(...[...names].sort().map((n) => el('option', { value: n })));
  }
  // The group's ban policy per queue ("!banpolicy", also an ad-hoc command), shown with
  // the ban control so an operator knows what a ban will do before using it.
  const banPolicies = new Map();
  async function loadBanPolicy(api, queue) {
    try {
      const result = await api.adhoc.fetchCommandForm(queue + '@' + componentDomain, 'banpolicy');
      if (result && result.note) banPolicies.set(queue, result.note.text);
    } catch (err) {
      // not an operator of this queue
    }
    showBanPolicy();
  }
  function showBanPolicy() {
    banPolicy.textContent = banPolicies.get(chatQueue.get(current)) || banPolicies.values().next().value || '';
  }
  function cannedText(name) {
    const own = cannedTexts.get(chatQueue.get(current));
    if (own && own.has(name)) return own.get(name);
    for (const texts of cannedTexts.values()) if (texts.has(name)) return texts.get(name);
    return undefined;
  }
  function insertText(text) {
    const form = document.querySelector('converse-chat[jid="' + CSS.escape(current) + '"] converse-message-form')
      || document.querySelector('converse-message-form');
    const area = form && form.querySelector('textarea');
    if (!area) return;
    area.value = text;
    area.dispatchEvent(new Event('input', { bubbles: true }));
    area.focus();
  }

  const queueState = new Map();
  function drawQueues() {
    // Only the queues that told this operator their state (the ones they belong to and
    // have accepted); until then, what to do.
    const known = queues.filter((q) => queueState.has(q));
    if (!known.length) {
      queueList.replaceChildren(el('li', { class: 'rd-hint',
        text: 'Your queues appear here once you accept their contact requests (left, under Contact requests).' }));
      return;
    }
    queueList.replaceChildren(...known.map((q) => el('li', { 'data-queue': q, text: queueState.get(q) })));
  }
  drawQueues();

  function learnQueue(api, q) {
    // A queue this operator hears from: offered as a transfer target, and its canned
    // messages and ban policy fetched once (the component answers only its operators).
    if (queues.includes(q)) return;
    queues.push(q);
    transferList.append(el('option', { value: q }));
    loadCanned(api, q);
    loadBanPolicy(api, q);
  }

  function notifyOffer(guest, text) {
    alertBox.textContent = 'New chat offer from ' + guest + '. ' + text.split('\n')[0];
    if (muted) return;
    new Audio(SOUND).play().catch(() => {});
    if ('Notification' in window && Notification.permission === 'granted') {
      new Notification('New chat offer', { body: text.slice(0, 200), tag: guest });
    }
  }

  converse.plugins.add('refdesk', {
    initialize() {
      const { api } = this._converse;
      window.rdApi = api;
      // The login screen gets our own heading instead of Converse.js's brand and its
      // links to other sites, and no stock footer: it loads sponsors' logos from another
      // site, which this page's CSP blocks (and a shared desk computer should not fetch).
      const heading = class extends HTMLElement {
        connectedCallback() {
          this.replaceChildren(
            el('h1', { class: 'rd-login-title', text: 'Reference desk: operator log-in' }),
            el('p', { class: 'rd-login-help', text: 'Log in with your own XMPP account. Your password goes only to your XMPP server.' }));
        }
      };
      api.elements.define('converse-brand-logo', heading);
      api.elements.define('converse-controlbox-navbar', class extends HTMLElement {});
      api.elements.define('converse-footer', class extends HTMLElement {
        connectedCallback() {
          this.replaceChildren(el('p', { class: 'rd-credit', text: 'Converse.js (MPL-2.0) inside refdesk' }));
        }
      });
      api.listen.on('connected', () => {
        document.body.prepend(panel);
        if ('Notification' in window && Notification.permission === 'default') {
          mute.addEventListener('click', () => Notification.requestPermission(), { once: true });
        }
        api.listen.stanza('presence', (stanza) => {
          const q = queueOf(stanza.getAttribute('from'));
          const type = stanza.getAttribute('type');
          if (q) learnQueue(api, q);
          if (q && (!type || type === 'unavailable')) {
            const status = stanza.querySelector('status');
            queueState.set(q, type ? q + ': offline' : (status ? status.textContent : q));
            drawQueues();
          }
          return true; // keep the handler
        });
        api.listen.stanza('message', (stanza) => {
          const from = stanza.getAttribute('from');
          const body = stanza.querySelector('body');
          const offer = body && isGuest(from) && OFFER.exec(body.textContent);
          if (offer) {
            chatQueue.set(bare(from), offer[1]);
            learnQueue(api, offer[1]);
            notifyOffer(bare(from), body.textContent);
          }
          return true;
        });
      });
      api.listen.on('disconnected', () => panel.remove());
      api.listen.on('chatBoxFocused', (view) => track(view.model));
      api.listen.on('chatBoxViewInitialized', (view) => track(view.model));
      api.listen.on('message', (data) => {
        // Once Converse.js has the message in its chat: a guest's offer opens that chat.
        const jid = data.chatbox && data.chatbox.get('jid');
        if (!jid || !isGuest(jid)) return;
        const body = (data.attrs && data.attrs.body) || '';
        if (OFFER.test(body)) api.chats.open(bare(jid), {}, true);
        // A guest is one chat, not someone to add to the roster: no "add as a contact?"
        // prompt over the conversation.
        const contact = data.chatbox.contact;
        if (contact && !contact.get('hide_contact_add_alert')) {
          contact.save({ hide_contact_add_alert: true });
        }
        track(data.chatbox);
      });
    },
  });

  function track(model) {
    const jid = model && model.get && model.get('jid');
    if (!jid || !isGuest(jid)) return;
    current = bare(jid);
    chatTitle.textContent = 'Commands for ' + current;
    chatTools.hidden = false;
    showBanPolicy();
  }

  converse.initialize({
    websocket_url: settings.websocket_url,
    discover_connection_methods: false,
    assets_path: settings.assets_path,
    sounds_path: settings.assets_path + 'sounds/',
    view_mode: 'fullscreen',
    i18n: 'en',
    loglevel: 'warn',
    // Shared computers: nothing survives the tab or a log-out, and no "trusted device".
    persistent_store: 'sessionStorage',
    allow_user_trust_override: false,
    clear_cache_on_logout: true,
    reuse_scram_keys: false,
    allow_logout: true,
    allow_registration: false,
    auto_reconnect: true,
    show_controlbox_by_default: true,
    play_sounds: true,
    show_desktop_notifications: true,
    allow_adhoc_commands: true,
    // Nothing from other sites: no previews, no embedded players, no emoji images.
    show_images_inline: false,
    embed_3rd_party_media_players: false,
    visible_toolbar_buttons: { call: false, spoiler: false, emoji: false, omemo: false },
    blacklisted_plugins: ['converse-omemo', 'converse-muc-views', 'converse-bookmark-views'],
    whitelisted_plugins: ['refdesk'],
  });
})();
