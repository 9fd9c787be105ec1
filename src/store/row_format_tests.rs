use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn round_trip(text: &str) -> String {
    let mut back = String::new();
    decode_into(&encode(text.as_bytes()), &mut back).expect("the codec decodes what it wrote");
    back
}

const ISSUED: &str = r#"{"token_id":"5e2a99e9-4ec2-48c3-ba78-72f5deb53923","family_id":"5e2a99e9-4ec2-48c3-ba78-72f5deb53923","client_id":"a1c3f688323e46fb943e5f74d30ea15a","username":"user001667","scopes":"","grant_type":"password","access_digest":"29bf0b7ce1122ac2fe67cb37d4dcf662fff7df620c25256bae7ff0d9c1eb95af","issued_at":1796685422766,"expires_at":1796689022766,"sealed_access":"QTManN+8ohsR9pm+khYlzO77Zd1yl0yDW2rWOlyqBfXA9iEEj2AwHuaQY920DjhKuB+HZ8wa37OEdnFvL4c2X1aRPEw0Qeo=","refresh":{"digest":"7fb08ce94c6dc19415e7ddc84d49fe274c86f26ca836cc260d04bfb33811ad94","issued_at":1796685422766,"expires_at":1796771822766,"sealed":"03UGxZsL5X7d87H37nr9UwH+VlVV/+fDzhFlAxgbNQfmf6IUVKX5luj+o4gqjXqkJmLahPjngeR76DJK3AxE9xzGIaX45oU="}}"#;

#[test]
fn a_token_issue_payload_shrinks_to_under_half_and_reads_back_exactly() {
    let compact = encode_text(ISSUED).expect("a shorter form");
    assert!(compact.len() * 2 < ISSUED.len(), "{} of {} bytes", compact.len(), ISSUED.len());
    let mut back = String::new();
    decode_into(&compact, &mut back).unwrap();
    assert_eq!(back, ISSUED);
}

#[test]
fn ids_digests_and_stream_names_read_back_exactly() {
    for text in [
        "5dbddb30-fe0a-4430-8f17-ba1e7f904d74",
        "grant-7728f76c1134339d5492fffad5c71538d37bb8edfa953f412f8ec2bc91099f45",
        "client-08be3ddf1fde41a3a52df7a2200dcfae",
        "a1c3f688323e46fb943e5f74d30ea15a",
    ] {
        let compact = encode_text(text).expect("a shorter form");
        assert!(compact.len() < text.len());
        assert_eq!(round_trip(text), text);
    }
}

#[test]
fn forms_that_would_not_reformat_identically_are_kept_as_text() {
    // Uppercase hex and UUIDs, unpadded or non-canonical base64, leading zeros, numbers beyond
    // u64: each reads back exactly, through the copied bytes rather than a compact form.
    for text in [
        "5DBDDB30-FE0A-4430-8F17-BA1E7F904D74",
        "29BF0B7CE1122AC2FE67CB37D4DCF662FFF7DF620C25256BAE7FF0D9C1EB95AF",
        "QTManN+8ohsR9pm+khYlzO77Zd1yl0yDW2rWOlyqBfXA9iEEj2AwHuaQY920DjhKuB+HZ8wa37OEdnFvL4c2X1aRPEw0Qeo",
        "QTManN+8ohsR9pm+khYlzO77Zd1yl0yDW2rWOlyqBfXA9iEEj2AwHuaQY920DjhKuB+HZ8wa37OEdnFvL4c2X1aRPEw0Qep=",
        "{\"n\":0001796685422766,\"m\":99999999999999999999999}",
        "control \u{1} \u{6} \u{7} bytes, \u{0} and unicode: é ✓ 🦀",
        "",
    ] {
        assert_eq!(round_trip(text), text);
        if let Some(compact) = encode_text(text) {
            let mut back = String::new();
            decode_into(&compact, &mut back).unwrap();
            assert_eq!(back, text);
        }
    }
    assert!(encode_text("user001667").is_none(), "nothing shorter: the text is stored");
}

#[test]
fn any_text_built_of_the_codecs_favourite_pieces_reads_back_exactly() {
    let pieces = [
        "a",
        "0",
        "f",
        "9",
        "-",
        "=",
        "+",
        "/",
        "\"",
        "{",
        ",",
        "\u{3}",
        "é",
        "Z",
        "1796685422766",
        "0042",
        "5e2a99e9-4ec2-48c3-ba78-72f5deb53923",
        "29bf0b7ce1122ac2fe67cb37d4dcf662",
        "QTManN+8ohsR9pm+khYlzO77",
        "\",\"issued_at\":",
        "{\"token_id\":\"",
        "password",
        "==",
    ];
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..5_000 {
        let text: String =
            (0..rng.gen_range(0..40)).map(|_| pieces[rng.gen_range(0..pieces.len())]).collect();
        assert_eq!(round_trip(&text), text);
    }
}

#[test]
fn a_stored_form_the_codec_did_not_write_is_refused_not_guessed() {
    let mut out = String::new();
    for bad in [
        &[TAG_UUID, 1, 2][..],
        &[TAG_HEX, 5, 1],
        &[TAG_WORD, 200],
        &[TAG_INT, 0x80],
        &[TAG_SAME_UUID],
        &[0],
        &[0xff],
    ] {
        assert!(decode_into(bad, &mut out).is_err(), "{bad:?}");
    }
}

#[test]
fn event_types_have_stable_numbers() {
    assert_eq!(event_type_code("ClientRegistered"), Some(0));
    assert_eq!(event_type_code("TokenIssued"), Some(4));
    assert_eq!(event_type_code("ExpiredPruned"), Some(19));
    assert_eq!(event_type_code("SomethingNew"), None);
    assert_eq!(event_type_name(4), Some("TokenIssued"));
    assert_eq!(event_type_name(20), None);
    assert_eq!(event_type_name(-1), None);
}
