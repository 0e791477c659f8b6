//! The embedded generator against the real SmolLM2-135M-Instruct weights
//! (`make models` fetches them into models/).

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::OnceLock;

use quarry_generate::{
    FinishReason, GenerateError, GenerationRequest, Generator, GgufLlama, Message, Role,
};

fn model() -> &'static GgufLlama {
    static MODEL: OnceLock<GgufLlama> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
        let model = GgufLlama::new(path);
        model.load().expect("run `make models` to fetch SmolLM2");
        model
    })
}

fn ask(question: &str, max_tokens: usize) -> GenerationRequest {
    GenerationRequest::greedy(vec![Message::new(Role::User, question)], max_tokens)
}

fn generate(request: &GenerationRequest) -> (quarry_generate::Generation, Vec<String>) {
    let mut pieces = Vec::new();
    let g = model()
        .generate(request, &mut |p| {
            pieces.push(p.to_string());
            ControlFlow::Continue(())
        })
        .unwrap();
    (g, pieces)
}

#[test]
fn the_chat_template_from_the_file_is_applied() {
    let text = model().render(&[Message::new(Role::User, "Hi")]).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    // Control tokens are single tokens; ordinary text round-trips.
    assert_eq!(model().count_tokens("<|im_start|>"), 1);
    assert_eq!(model().count_tokens("<|im_start|>user\n"), 3);
}

#[test]
fn greedy_answers_are_deterministic_streamed_in_pieces_and_end_their_turn() {
    let request = ask("What is the capital of France? Answer in one word.", 40);
    let (first, pieces) = generate(&request);
    let (second, _) = generate(&request);
    assert_eq!(first.text, second.text);
    assert_eq!(pieces.concat(), first.text);
    assert!(first.text.contains("Paris"), "{:?}", first.text);
    assert_eq!(first.finish, FinishReason::EndOfTurn);
    assert!(first.completion_tokens < 40);
    assert!(first.prompt_tokens > 20);
}

#[test]
fn max_tokens_and_stop_sequences_are_honoured() {
    let (long, _) = generate(&ask("Write a long story about a dragon.", 12));
    assert_eq!(long.finish, FinishReason::Length);
    assert_eq!(long.completion_tokens, 12);

    let mut request = ask("Write a long story about a dragon.", 60);
    let (free, _) = generate(&request);
    // Stop at the second word of the free answer: what comes back is what precedes it.
    let word = free.text.split_whitespace().nth(2).unwrap().to_string();
    request.stop_sequences = vec![word.clone()];
    let (stopped, pieces) = generate(&request);
    assert_eq!(stopped.finish, FinishReason::StopSequence);
    assert_eq!(stopped.text, free.text[..free.text.find(&word).unwrap()]);
    assert_eq!(pieces.concat(), stopped.text);
}

#[test]
fn sampling_follows_its_seed_and_a_prompt_over_the_context_is_refused() {
    let mut request = ask("Name a colour.", 8);
    request.temperature = Some(0.9);
    request.top_p = Some(0.9);
    request.seed = 7;
    let (a, _) = generate(&request);
    let (b, _) = generate(&request);
    assert_eq!(a.text, b.text);

    let huge = "word ".repeat(model().context_tokens() + 10);
    let err = model()
        .generate(&ask(&huge, 8), &mut |_| ControlFlow::Continue(()))
        .unwrap_err();
    assert!(
        matches!(err, GenerateError::Invalid(ref m) if m.contains("context")),
        "{err}"
    );
}
