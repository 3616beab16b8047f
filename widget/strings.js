/* refdesk widget UI strings, one object per language. {n} is replaced by a number. */
window.REFDESK_STRINGS = {
  en: {
    log: "Conversation",
    message: "Message",
    hint: "Enter to send, Shift+Enter for a new line",
    send: "Send",
    end: "End chat",
    ended: "Chat ended",
    newChat: "Start a new chat",
    newChatStarted: "A new chat has started.",
    you: "You",
    librarian: "Librarian",
    system: "System",
    sending: "Sending…",
    notSent: "Not sent",
    reconnecting: "Reconnecting…",
    typing: "The librarian is typing…",
    position: "You are number {n} in line.",
    error: "Something went wrong. Please try again.",
    bannedTitle: "Chat not available",
    banned: "Chat is not available from this network.",
    endedBy: {
      operator: "The librarian ended the chat.",
      patron: "You ended the chat.",
      system: "The chat was closed."
    },
    status: {
      available: "Available",
      away: "Away",
      busy: "Busy",
      offline: "Offline"
    }
  },
  es: {
    log: "Conversación",
    message: "Mensaje",
    hint: "Intro para enviar, Mayús+Intro para una línea nueva",
    send: "Enviar",
    end: "Terminar chat",
    ended: "Chat terminado",
    newChat: "Empezar un chat nuevo",
    newChatStarted: "Ha empezado un chat nuevo.",
    you: "Usted",
    librarian: "Bibliotecario/a",
    system: "Sistema",
    sending: "Enviando…",
    notSent: "No enviado",
    reconnecting: "Reconectando…",
    typing: "El personal de la biblioteca está escribiendo…",
    position: "Usted es el número {n} en la fila.",
    error: "Algo salió mal. Inténtelo de nuevo.",
    bannedTitle: "Chat no disponible",
    banned: "El chat no está disponible desde esta red.",
    endedBy: {
      operator: "El personal de la biblioteca terminó el chat.",
      patron: "Usted terminó el chat.",
      system: "El chat se cerró."
    },
    status: {
      available: "Disponible",
      away: "Ausente",
      busy: "Ocupado",
      offline: "Fuera de línea"
    }
  }
};
