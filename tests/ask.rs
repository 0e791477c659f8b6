//! `quarry ask`: RetrieveAndGenerate from the command line with the real SmolLM2 weights.

mod common;

use common::Workspace;
use serde_json::Value;

fn with_smollm2(ws: &Workspace) {
    let model =
        common::repo_root().join("models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(model.is_file(), "run `make models` first");
    let mut config = std::fs::read_to_string(&ws.config).unwrap();
    config.push_str(&format!(
        "\n[models.smollm2]\nkind = \"gguf-llama\"\npath = \"{}\"\n",
        model.display()
    ));
    std::fs::write(&ws.config, config).unwrap();
}

fn ask(ws: &Workspace, question: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "ask",
        "test",
        question,
        "--json",
        "--max-tokens",
        "24",
        "-k",
        "2",
    ];
    args.extend(extra);
    let out = ws.quarry(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ask --json prints a RetrieveAndGenerate response")
}

#[test]
fn ask_answers_with_citations_and_continues_a_session() {
    let ws = Workspace::new(None);
    with_smollm2(&ws);
    ws.write(
        "kiln.txt",
        "The studio kiln fires stoneware at 1240 degrees Celsius. Firing takes eleven hours.",
    );
    ws.write(
        "glaze.txt",
        "Glazes are sieved twice before use. The blue glaze contains cobalt oxide.",
    );
    ws.sync();

    let first = ask(&ws, "How hot does the kiln fire stoneware?", &[]);
    let text = first["output"]["text"].as_str().unwrap();
    assert!(!text.trim().is_empty());
    let chars: Vec<char> = text.chars().collect();
    let citations = first["citations"].as_array().unwrap();
    assert!(!citations.is_empty());
    for c in citations {
        let part = &c["generatedResponsePart"]["textResponsePart"];
        let (start, end) = (
            part["span"]["start"].as_u64().unwrap() as usize,
            part["span"]["end"].as_u64().unwrap() as usize,
        );
        let slice: String = chars[start..end].iter().collect();
        assert_eq!(slice, part["text"].as_str().unwrap());
        for r in c["retrievedReferences"].as_array().unwrap() {
            assert!(
                r["metadata"]["x-amz-bedrock-kb-source-uri"]
                    .as_str()
                    .unwrap()
                    .starts_with("file://")
            );
        }
    }
    let session = first["sessionId"].as_str().unwrap().to_string();
    let file = ws
        .dir
        .path()
        .join(format!("data/sessions/session-{session}.json"));
    let turns = |f: &std::path::Path| -> Vec<Value> {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        v["turns"].as_array().unwrap().clone()
    };
    assert_eq!(turns(&file).len(), 1);
    assert_eq!(turns(&file)[0]["answer"], first["output"]["text"]);

    let second = ask(&ws, "And how long does it take?", &["--session", &session]);
    assert_eq!(second["sessionId"], session.as_str());
    let kept = turns(&file);
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[1]["question"], "And how long does it take?");

    let out = ws.quarry(&["ask", "test", "Why?", "--session", "not-a-session"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not-a-session"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ask_without_a_generation_model_says_what_to_configure() {
    let ws = Workspace::new(None);
    let out = ws.quarry(&["ask", "test", "Why?"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no generation model in [models]"), "{err}");
}
