//! What a group said that the agent was not addressed by: the last few messages of each group
//! that the access policy left undelivered for want of a mention, handed over with the next
//! message it delivers there (`InboundMessage::context`), so the agent knows what is being
//! talked about. Bounded: `per_chat` lines a chat, each cut to `LINE_CHARS`, and `MAX_CHATS`
//! chats (the one that spoke least recently goes first). Pure: no I/O.

use std::collections::{HashMap, VecDeque};

use bridge_protocol::message::{ContextLine, InboundMessage};

/// A context line is a reminder, not the message: longer ones are cut.
const LINE_CHARS: usize = 500;
/// Groups remembered at once.
const MAX_CHATS: usize = 1000;

pub struct GroupContext {
    per_chat: usize,
    chats: HashMap<String, VecDeque<ContextLine>>,
    /// Chats by when they last spoke, least recent first.
    order: VecDeque<String>,
}

impl GroupContext {
    /// `per_chat`: lines kept per group; 0 keeps none.
    pub fn new(per_chat: usize) -> Self {
        Self {
            per_chat,
            chats: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// A group message the agent was not addressed by.
    pub fn keep(&mut self, msg: &InboundMessage) {
        let Some(text) = msg.text.as_deref().filter(|t| !t.trim().is_empty()) else {
            return;
        };
        if self.per_chat == 0 || !msg.is_group {
            return;
        }
        self.touch(&msg.chat);
        let lines = self.chats.entry(msg.chat.clone()).or_default();
        if lines.len() == self.per_chat {
            lines.pop_front();
        }
        lines.push_back(ContextLine {
            text: text.chars().take(LINE_CHARS).collect(),
            sender: msg.sender.clone(),
            sender_name: msg.push_name.clone(),
        });
        while self.order.len() > MAX_CHATS {
            if let Some(oldest) = self.order.pop_front() {
                self.chats.remove(&oldest);
            }
        }
    }

    /// The lines kept for `chat`, oldest first, and forgets them: a delivered message there.
    pub fn take(&mut self, chat: &str) -> Vec<ContextLine> {
        // Most delivered group messages find nothing kept: no walk of the order then.
        let Some(lines) = self.chats.remove(chat) else {
            return Vec::new();
        };
        self.order.retain(|c| c != chat);
        Vec::from(lines)
    }

    fn touch(&mut self, chat: &str) {
        if self.chats.contains_key(chat) {
            self.order.retain(|c| c != chat);
        }
        self.order.push_back(chat.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(chat: &str, sender: &str, text: &str) -> InboundMessage {
        serde_json::from_value(serde_json::json!({
            "id": format!("{chat}-{text}"), "chat": chat, "sender": sender, "is_group": true,
            "text": text, "push_name": "Ann", "timestamp": 1
        }))
        .unwrap()
    }

    #[test]
    fn a_group_keeps_its_last_lines_until_one_is_delivered() {
        let mut c = GroupContext::new(2);
        for text in ["one", "two", "three"] {
            c.keep(&said("g1", "u1", text));
        }
        c.keep(&said("g2", "u2", "elsewhere"));
        let lines = c.take("g1");
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["two", "three"], "oldest first, the window's size");
        assert_eq!(lines[0].sender_name.as_deref(), Some("Ann"));
        assert!(c.take("g1").is_empty(), "given once");
        assert_eq!(c.take("g2").len(), 1);

        let mut off = GroupContext::new(0);
        off.keep(&said("g1", "u1", "x"));
        assert!(off.take("g1").is_empty());
        let mut dm = said("u1", "u1", "private");
        dm.is_group = false;
        c.keep(&dm);
        assert!(c.take("u1").is_empty(), "never a direct chat's");
    }

    #[test]
    fn memory_stays_bounded() {
        let mut c = GroupContext::new(3);
        for i in 0..(MAX_CHATS + 50) {
            c.keep(&said(&format!("g{i}"), "u", &"x".repeat(2000)));
        }
        assert_eq!(c.chats.len(), MAX_CHATS);
        assert!(c.take("g0").is_empty(), "the least recent chat went first");
        assert_eq!(
            c.take(&format!("g{}", MAX_CHATS + 49))[0].text.len(),
            LINE_CHARS
        );
    }
}
