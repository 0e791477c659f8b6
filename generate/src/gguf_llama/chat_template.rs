//! The model's own chat template (a Jinja template in `tokenizer.chat_template`), rendered
//! with minijinja the way Hugging Face's `apply_chat_template` does.

use minijinja::{Environment, context};

use crate::Message;

/// ChatML, for GGUF files that carry no template.
const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    pub fn new(
        source: Option<&str>,
        bos: Option<String>,
        eos: Option<String>,
    ) -> Result<Self, String> {
        let mut env = Environment::new();
        env.add_template_owned("chat", source.unwrap_or(CHATML).to_string())
            .map_err(|e| format!("the GGUF chat template does not parse: {e}"))?;
        Ok(Self {
            env,
            bos: bos.unwrap_or_default(),
            eos: eos.unwrap_or_default(),
        })
    }

    /// The prompt text for `messages`, ending where the assistant's answer starts.
    pub fn render(&self, messages: &[Message]) -> Result<String, String> {
        let template = self.env.get_template("chat").map_err(|e| e.to_string())?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => self.bos,
                eos_token => self.eos,
            })
            .map_err(|e| format!("the chat template failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    #[test]
    fn renders_chatml_with_the_generation_prompt() {
        let t = ChatTemplate::new(None, None, None).unwrap();
        let text = t
            .render(&[
                Message::new(Role::System, "Be brief."),
                Message::new(Role::User, "Hi?"),
            ])
            .unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
