//! Orders written in prose, with their fields as gold (`amend data orders`): the data of the
//! `json-extract` pipeline. Each line is `{"text": PROSE, "gold": {"item", "quantity",
//! "unit_price", "city"}}`; the prose varies its wording and the order of the fields, writes
//! some quantities as words, and gives prices with or without cents. A record is a pure
//! function of the seed.

use serde::Serialize;

use crate::rng::Rng;

/// One order's fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fields {
    /// What is ordered.
    pub item: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, in dollars.
    pub unit_price: f64,
    /// Where it goes.
    pub city: String,
}

/// One order: the prose and its fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Order {
    /// The order in prose.
    pub text: String,
    /// Its fields.
    pub gold: Fields,
}

const ITEMS: &[&str] = &[
    "notebooks",
    "coffee mugs",
    "desk lamps",
    "rain jackets",
    "bags of rice",
    "garden hoses",
    "phone chargers",
    "boxes of green tea",
    "wool blankets",
    "bicycle helmets",
    "paint brushes",
    "water bottles",
];

const CITIES: &[&str] = &[
    "Lisbon", "Nairobi", "Osaka", "Denver", "Lyon", "Quito", "Krakow", "Perth", "Toronto", "Pune",
];

const WORDS: &[&str] = &[
    "", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve",
];

fn price_text(cents: u64, rng: &mut Rng) -> String {
    match (cents % 100, rng.range(0, 1)) {
        (0, 0) => format!("${}", cents / 100),
        (0, _) => format!("{} dollars", cents / 100),
        (c, _) => format!("${}.{c:02}", cents / 100),
    }
}

/// One order drawn from `rng`.
pub fn order(rng: &mut Rng) -> Order {
    let item = rng.pick(ITEMS).copied().unwrap_or("notebooks");
    let city = rng.pick(CITIES).copied().unwrap_or("Lisbon");
    let quantity = rng.range(1, 40) as u32;
    let cents = match rng.range(0, 2) {
        0 => rng.range(1, 60) * 100,
        _ => rng.range(100, 9_999),
    };
    let q = match WORDS.get(quantity as usize) {
        Some(w) if !w.is_empty() && rng.range(0, 2) == 0 => (*w).to_string(),
        _ => quantity.to_string(),
    };
    let p = price_text(cents, rng);
    let text = match rng.range(0, 3) {
        0 => format!("Please send {q} {item} to {city}. They cost {p} each."),
        1 => format!("Ship to {city}: {q} {item} at {p} apiece."),
        2 => format!("Our office in {city} needs {q} {item}; the price is {p} per unit."),
        _ => format!("I'd like to order {item}, {q} of them, at {p} each, delivered to {city}."),
    };
    Order {
        text,
        gold: Fields {
            item: item.to_string(),
            quantity,
            unit_price: cents as f64 / 100.0,
            city: city.to_string(),
        },
    }
}

/// `n` orders from `seed`.
pub fn generate(n: usize, seed: u64) -> Vec<Order> {
    let mut rng = Rng::new(seed ^ 0x6f72_6465_7273);
    (0..n).map(|_| order(&mut rng)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_in_the_prose() {
        for o in generate(300, 5) {
            let t = &o.text;
            assert!(t.contains(&o.gold.item) && t.contains(&o.gold.city), "{t}");
            let q = o.gold.quantity as usize;
            assert!(
                t.contains(&q.to_string()) || WORDS.get(q).is_some_and(|w| t.contains(w)),
                "{t}"
            );
            let whole = o.gold.unit_price.trunc() as u64;
            assert!(t.contains(&whole.to_string()), "{t}");
        }
        assert_eq!(generate(5, 1), generate(5, 1));
        assert_ne!(generate(5, 1), generate(5, 2));
    }
}
