//! A page's content streams run far enough to know where each glyph lands: the graphics
//! state's matrix (`cm`, `q`, `Q`), the text state (`Tf`, `Tc`, `Tw`, `Tz`, `TL`, `Ts`), text
//! positioning (`Td`, `TD`, `Tm`, `T*`), the text-showing operators (`Tj`, `TJ`, `'`, `"`) and
//! form XObjects (`Do`). Everything that only paints is skipped.

use std::collections::HashMap;
use std::rc::Rc;

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Object, ObjectId};

use super::fonts::Font;
use super::layout::{Layout, Placement};
use super::objects::{dict, direct_number, resolve, stream_data};

type Matrix = [f32; 6];
const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

fn mul(m: &Matrix, n: &Matrix) -> Matrix {
    [
        m[0] * n[0] + m[1] * n[2],
        m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2],
        m[2] * n[1] + m[3] * n[3],
        m[4] * n[0] + m[5] * n[2] + n[4],
        m[4] * n[1] + m[5] * n[3] + n[5],
    ]
}

fn translate(m: &Matrix, tx: f32, ty: f32) -> Matrix {
    mul(&[1.0, 0.0, 0.0, 1.0, tx, ty], m)
}

/// Forms inside forms deeper than this are not followed.
const MAX_FORM_DEPTH: usize = 8;
/// Operators run per page at most, against pathological content.
const MAX_OPERATIONS: usize = 4_000_000;
/// Saved graphics states kept at most (`q` without `Q`).
const MAX_SAVED_STATES: usize = 256;

#[derive(Clone)]
struct State {
    ctm: Matrix,
    font: Option<Rc<Font>>,
    size: f32,
    char_space: f32,
    word_space: f32,
    scale: f32,
    leading: f32,
    rise: f32,
}

impl Default for State {
    fn default() -> Self {
        State {
            ctm: IDENTITY,
            font: None,
            size: 0.0,
            char_space: 0.0,
            word_space: 0.0,
            scale: 1.0,
            leading: 0.0,
            rise: 0.0,
        }
    }
}

/// Runs pages' content for their text; fonts are loaded once per document.
pub struct TextExtractor<'a> {
    doc: &'a Document,
    limit: usize,
    fonts: HashMap<usize, Rc<Font>>,
    operations: usize,
}

fn num(o: &Object) -> f32 {
    direct_number(o).unwrap_or(0.0)
}

fn nums<const N: usize>(operands: &[Object]) -> Option<[f32; N]> {
    (operands.len() >= N).then(|| std::array::from_fn(|i| num(&operands[operands.len() - N + i])))
}

impl<'a> TextExtractor<'a> {
    pub fn new(doc: &'a Document, limit: usize) -> Self {
        TextExtractor {
            doc,
            limit,
            fonts: HashMap::new(),
            operations: 0,
        }
    }

    /// The text of one page, or why it could not be read.
    pub fn page(&mut self, page: ObjectId) -> Result<String, lopdf::Error> {
        let data = self.doc.get_page_content_with_limit(page, self.limit)?;
        let content = Content::decode(&data)?;
        let (direct, inherited) = self.doc.get_page_resources(page)?;
        let mut resources: Vec<&Dictionary> = direct.into_iter().collect();
        resources.extend(
            inherited
                .into_iter()
                .filter_map(|id| self.doc.get_dictionary(id).ok()),
        );
        let mut layout = Layout::default();
        self.operations = 0;
        self.run(&content, &resources, State::default(), &mut layout, 0);
        Ok(layout.finish())
    }

    fn font(&mut self, resources: &[&'a Dictionary], name: &[u8]) -> Option<Rc<Font>> {
        let doc = self.doc;
        let font = resources.iter().find_map(|r| {
            let fonts = dict(doc, r.get(b"Font").ok()?)?;
            dict(doc, fonts.get(name).ok()?)
        })?;
        let key = font as *const Dictionary as usize;
        let limit = self.limit;
        Some(
            self.fonts
                .entry(key)
                .or_insert_with(|| Rc::new(Font::load(doc, font, limit)))
                .clone(),
        )
    }

    fn run(
        &mut self,
        content: &Content,
        resources: &[&'a Dictionary],
        mut gs: State,
        layout: &mut Layout,
        depth: usize,
    ) {
        let mut saved: Vec<State> = Vec::new();
        let mut tm = IDENTITY;
        let mut tlm = IDENTITY;
        let mut scratch = String::new();
        for op in &content.operations {
            self.operations += 1;
            if self.operations > MAX_OPERATIONS {
                return;
            }
            let operands = &op.operands;
            match op.operator.as_str() {
                "q" if saved.len() < MAX_SAVED_STATES => saved.push(gs.clone()),
                "Q" => {
                    if let Some(state) = saved.pop() {
                        gs = state;
                    }
                }
                "cm" => {
                    if let Some(m) = nums::<6>(operands) {
                        gs.ctm = mul(&m, &gs.ctm);
                    }
                }
                "BT" => {
                    tm = IDENTITY;
                    tlm = IDENTITY;
                }
                "Tf" => {
                    if let [Object::Name(name), size] = operands.as_slice() {
                        gs.font = self.font(resources, name);
                        gs.size = num(size);
                    }
                }
                "Tc" => gs.char_space = nums::<1>(operands).map_or(0.0, |[v]| v),
                "Tw" => gs.word_space = nums::<1>(operands).map_or(0.0, |[v]| v),
                "Tz" => gs.scale = nums::<1>(operands).map_or(100.0, |[v]| v) / 100.0,
                "TL" => gs.leading = nums::<1>(operands).map_or(0.0, |[v]| v),
                "Ts" => gs.rise = nums::<1>(operands).map_or(0.0, |[v]| v),
                "Td" | "TD" => {
                    if let Some([tx, ty]) = nums::<2>(operands) {
                        if op.operator == "TD" {
                            gs.leading = -ty;
                        }
                        tlm = translate(&tlm, tx, ty);
                        tm = tlm;
                    }
                }
                "Tm" => {
                    if let Some(m) = nums::<6>(operands) {
                        tlm = m;
                        tm = m;
                    }
                }
                "T*" => {
                    tlm = translate(&tlm, 0.0, -gs.leading);
                    tm = tlm;
                }
                "Tj" | "'" | "\"" => {
                    if op.operator != "Tj" {
                        if op.operator == "\""
                            && let Some([aw, ac]) =
                                nums::<2>(&operands[..operands.len().saturating_sub(1)])
                        {
                            gs.word_space = aw;
                            gs.char_space = ac;
                        }
                        tlm = translate(&tlm, 0.0, -gs.leading);
                        tm = tlm;
                    }
                    if let Some(Object::String(bytes, _)) = operands.last() {
                        self.show(bytes, &gs, &mut tm, layout, &mut scratch);
                    }
                }
                "TJ" => {
                    if let Some(Object::Array(items)) = operands.first() {
                        for item in items {
                            match item {
                                Object::String(bytes, _) => {
                                    self.show(bytes, &gs, &mut tm, layout, &mut scratch)
                                }
                                other => {
                                    let tx = -num(other) / 1000.0 * gs.size * gs.scale;
                                    tm = translate(&tm, tx, 0.0);
                                }
                            }
                        }
                    }
                }
                "Do" if depth < MAX_FORM_DEPTH => {
                    if let Some(Object::Name(name)) = operands.first() {
                        self.form(resources, name, &gs, layout, depth);
                    }
                }
                _ => {}
            }
        }
    }

    fn show(
        &self,
        bytes: &[u8],
        gs: &State,
        tm: &mut Matrix,
        layout: &mut Layout,
        scratch: &mut String,
    ) {
        let Some(font) = gs.font.clone() else {
            return;
        };
        font.decode(bytes, scratch, |text, code| {
            let trm = mul(
                &[gs.size * gs.scale, 0.0, 0.0, gs.size, 0.0, gs.rise],
                &mul(tm, &gs.ctm),
            );
            let mut advance = code.width * gs.size + gs.char_space;
            if code.word_space {
                advance += gs.word_space;
            }
            *tm = translate(tm, advance * gs.scale, 0.0);
            let end = mul(&[1.0, 0.0, 0.0, 1.0, 0.0, gs.rise], &mul(tm, &gs.ctm));
            let along = (trm[0] * trm[0] + trm[1] * trm[1]).sqrt();
            let dir = if along > 0.0 {
                [trm[0] / along, trm[1] / along]
            } else {
                [1.0, 0.0]
            };
            layout.glyph(
                text,
                Placement {
                    origin: [trm[4], trm[5]],
                    end: [end[4], end[5]],
                    dir,
                    size: (trm[2] * trm[2] + trm[3] * trm[3]).sqrt(),
                },
            );
            text.clear();
        });
    }

    fn form(
        &mut self,
        resources: &[&'a Dictionary],
        name: &[u8],
        gs: &State,
        layout: &mut Layout,
        depth: usize,
    ) {
        let doc = self.doc;
        let Some(object) = resources.iter().find_map(|r| {
            let xobjects = dict(doc, r.get(b"XObject").ok()?)?;
            xobjects.get(name).ok()
        }) else {
            return;
        };
        let Object::Stream(stream) = resolve(doc, object) else {
            return;
        };
        if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form") {
            return;
        }
        let Some(data) = stream_data(doc, object, self.limit) else {
            return;
        };
        let Ok(content) = Content::decode(&data) else {
            return;
        };
        let mut inner = gs.clone();
        if let Ok(Object::Array(m)) = stream.dict.get(b"Matrix")
            && let Some(m) = nums::<6>(m)
        {
            inner.ctm = mul(&m, &gs.ctm);
        }
        let mut form_resources: Vec<&Dictionary> = stream
            .dict
            .get(b"Resources")
            .ok()
            .and_then(|r| dict(doc, r))
            .into_iter()
            .collect();
        form_resources.extend_from_slice(resources);
        layout.break_flow();
        self.run(&content, &form_resources, inner, layout, depth + 1);
        layout.break_flow();
    }
}
