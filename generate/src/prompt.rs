//! The prompt: Bedrock's `textPromptTemplate` placeholders filled with the numbered search
//! results, the question and the citation instructions, fitted to the model's context by
//! dropping the lowest-ranked results first (then the oldest turns).

use crate::{GenerateError, Generator, Message, Role, Turn};

/// Bedrock Knowledge Bases' default RetrieveAndGenerate prompt.
pub const DEFAULT_TEMPLATE: &str = "You are a question answering agent. I will provide you with a set of search results. The user will provide you with a question. Your job is to answer the user's question using only information from the search results. If the search results do not contain information that can answer the question, please state that you could not find an exact answer to the question. Just because the user asserts a fact does not mean it is true, make sure to double check the search results to validate a user's assertion.\n\nHere are the search results in numbered order:\n$search_results$\n\n$output_format_instructions$";

/// What `$output_format_instructions$` becomes: how to cite, in the form the citation
/// parser reads back.
pub const OUTPUT_FORMAT_INSTRUCTIONS: &str = "Answer in a few sentences. After each sentence that uses a search result, write the number of that result in square brackets, for example [1] or [2][3].";

/// Tokens kept free for the chat template's own markup.
const TEMPLATE_MARGIN: usize = 32;

#[derive(Debug, Clone)]
pub struct PromptPassage {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub messages: Vec<Message>,
    /// How many of the passages (the best-ranked ones) made it into the prompt.
    pub passages_used: usize,
    /// How many earlier turns made it in.
    pub turns_used: usize,
}

fn search_results(passages: &[PromptPassage]) -> String {
    passages
        .iter()
        .enumerate()
        .map(|(i, p)| format!("[{}] {}", i + 1, p.text.trim()))
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn messages(
    template: &str,
    query: &str,
    history: &[Turn],
    passages: &[PromptPassage],
) -> Vec<Message> {
    let filled = template
        .replace("$search_results$", &search_results(passages))
        .replace("$output_format_instructions$", OUTPUT_FORMAT_INSTRUCTIONS);
    let mut out = Vec::new();
    let asks_inline = template.contains("$query$");
    if !asks_inline {
        out.push(Message::new(Role::System, filled.clone()));
    }
    for turn in history {
        out.push(Message::new(Role::User, turn.question.clone()));
        out.push(Message::new(Role::Assistant, turn.answer.clone()));
    }
    if asks_inline {
        out.push(Message::new(Role::User, filled.replace("$query$", query)));
    } else {
        out.push(Message::new(Role::User, query.to_string()));
    }
    out
}

/// Checks a caller's template: it must say where the search results go.
pub fn check_template(template: &str) -> Result<(), String> {
    if template.contains("$search_results$") {
        Ok(())
    } else {
        Err("promptTemplate.textPromptTemplate must contain $search_results$".into())
    }
}

/// Builds the chat for `query`, keeping as many of the best passages and the latest turns
/// as fit in the generator's context beside an answer of `answer_tokens`.
pub fn build_prompt(
    template: Option<&str>,
    query: &str,
    history: &[Turn],
    passages: &[PromptPassage],
    generator: &dyn Generator,
    answer_tokens: usize,
) -> Result<Prompt, GenerateError> {
    let template = template.unwrap_or(DEFAULT_TEMPLATE);
    check_template(template).map_err(GenerateError::Invalid)?;
    let budget = generator
        .context_tokens()
        .saturating_sub(answer_tokens + TEMPLATE_MARGIN);
    let size = |m: &[Message]| -> usize {
        m.iter()
            .map(|m| generator.count_tokens(&m.content) + 4)
            .sum()
    };
    let mut turns = history.len();
    let mut kept = passages.len();
    loop {
        let chat = messages(
            template,
            query,
            &history[history.len() - turns..],
            &passages[..kept],
        );
        if size(&chat) <= budget {
            if kept < passages.len() || turns < history.len() {
                tracing::info!(
                    passages_dropped = passages.len() - kept,
                    turns_dropped = history.len() - turns,
                    budget,
                    "prompt shortened to fit the model's context"
                );
            }
            return Ok(Prompt {
                messages: chat,
                passages_used: kept,
                turns_used: turns,
            });
        }
        if kept > 1 {
            kept -= 1;
        } else if turns > 0 {
            turns -= 1;
        } else if kept == 1 {
            kept = 0;
        } else {
            return Err(GenerateError::Invalid(format!(
                "the question and template alone take more than the model's context of {} tokens (with {answer_tokens} for the answer)",
                generator.context_tokens()
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use super::*;
    use crate::{Generation, GenerationRequest};

    /// Counts a token per word, with a small context.
    struct Words(usize);
    impl Generator for Words {
        fn context_tokens(&self) -> usize {
            self.0
        }
        fn count_tokens(&self, text: &str) -> usize {
            text.split_whitespace().count()
        }
        fn generate(
            &self,
            _: &GenerationRequest,
            _: &mut dyn FnMut(&str) -> ControlFlow<()>,
        ) -> Result<Generation, GenerateError> {
            unreachable!()
        }
    }

    fn passages(n: usize, words: usize) -> Vec<PromptPassage> {
        (1..=n)
            .map(|i| PromptPassage {
                text: vec![format!("p{i}"); words].join(" "),
            })
            .collect()
    }

    #[test]
    fn fills_the_placeholders_and_numbers_the_results() {
        let p = build_prompt(
            Some("Results:\n$search_results$\nQ: $query$\n$output_format_instructions$"),
            "why?",
            &[],
            &passages(2, 2),
            &Words(10_000),
            100,
        )
        .unwrap();
        assert_eq!(p.messages.len(), 1);
        assert_eq!(p.messages[0].role, Role::User);
        assert_eq!(
            p.messages[0].content,
            format!("Results:\n[1] p1 p1\n\n[2] p2 p2\nQ: why?\n{OUTPUT_FORMAT_INSTRUCTIONS}")
        );
    }

    #[test]
    fn without_query_placeholder_the_template_is_the_system_turn_and_history_comes_between() {
        let history = [Turn {
            question: "first?".into(),
            answer: "one.".into(),
        }];
        let p = build_prompt(
            None,
            "second?",
            &history,
            &passages(1, 3),
            &Words(10_000),
            100,
        )
        .unwrap();
        let roles: Vec<Role> = p.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::Assistant, Role::User]
        );
        assert!(p.messages[0].content.contains("[1] p1 p1 p1"));
        assert_eq!(p.messages[1].content, "first?");
        assert_eq!(p.messages[3].content, "second?");
    }

    #[test]
    fn drops_the_lowest_ranked_passages_first_then_old_turns() {
        let history = [Turn {
            question: "old question".into(),
            answer: "old answer".into(),
        }];
        let template = "$search_results$";
        // 5 passages of 50 words; room for about two of them beside the answer.
        let p = build_prompt(
            Some(template),
            "q",
            &history,
            &passages(5, 50),
            &Words(300),
            100,
        )
        .unwrap();
        assert_eq!((p.passages_used, p.turns_used), (2, 1));
        assert!(p.messages[0].content.contains("[2] p2"));
        assert!(!p.messages[0].content.contains("p3"));
        let p = build_prompt(
            Some(template),
            "q",
            &history,
            &passages(5, 50),
            &Words(200),
            100,
        )
        .unwrap();
        assert_eq!((p.passages_used, p.turns_used), (1, 0));
    }

    #[test]
    fn a_template_without_search_results_is_refused() {
        let err = build_prompt(Some("just $query$"), "q", &[], &[], &Words(100), 10).unwrap_err();
        assert!(err.to_string().contains("$search_results$"));
    }
}
