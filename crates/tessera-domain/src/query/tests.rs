use serde_json::json;

use super::eval::{parse_date, wildcard};
use super::*;

/// Three API key documents shaped as the listing answers them.
fn keys() -> Vec<Doc> {
    let doc = |id: &str, body: Value| Doc {
        id: id.into(),
        body,
    };
    vec![
        doc(
            "k1",
            json!({"id": "k1", "name": "alpha", "username": "ann", "realm": "default_native",
                   "type": "rest", "creation": 1_000, "expiration": 5_000, "invalidated": false,
                   "metadata": {"env": "prod", "team": {"name": "blue"}, "tags": ["a", "b"]}}),
        ),
        doc(
            "k2",
            json!({"id": "k2", "name": "beta", "username": "bob", "realm": "default_native",
                   "type": "rest", "creation": 2_000, "invalidated": true, "invalidation": 3_000,
                   "metadata": {"env": "dev"}}),
        ),
        doc(
            "k3",
            json!({"id": "k3", "name": "Alphabet", "username": "ann", "realm": "saml1",
                   "type": "rest", "creation": 3_000, "expiration": 4_000, "invalidated": false,
                   "metadata": {}}),
        ),
    ]
}

fn ids(search: &Search) -> Vec<String> {
    search
        .run(keys(), 10_000)
        .hits
        .into_iter()
        .map(|(d, _)| d["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_table_of_queries_selects_what_elasticsearch_would() {
    let table: &[(Value, &[&str])] = &[
        (json!({}), &["k1", "k2", "k3"]),
        (json!({"query": {"match_all": {}}}), &["k1", "k2", "k3"]),
        (json!({"query": {"term": {"name": "alpha"}}}), &["k1"]),
        (
            json!({"query": {"term": {"name": {"value": "ALPHA", "case_insensitive": true}}}}),
            &["k1"],
        ),
        (
            json!({"query": {"terms": {"username": ["bob", "zed"]}}}),
            &["k2"],
        ),
        (json!({"query": {"prefix": {"name": "Alpha"}}}), &["k3"]),
        (
            json!({"query": {"prefix": {"name": {"value": "alpha", "case_insensitive": true}}}}),
            &["k1", "k3"],
        ),
        (json!({"query": {"wildcard": {"name": "*ta"}}}), &["k2"]),
        (
            json!({"query": {"wildcard": {"name": {"value": "?lpha*"}}}}),
            &["k1", "k3"],
        ),
        (json!({"query": {"term": {"invalidated": true}}}), &["k2"]),
        (
            json!({"query": {"term": {"invalidated": "false"}}}),
            &["k1", "k3"],
        ),
        (
            json!({"query": {"range": {"creation": {"gte": 2_000}}}}),
            &["k2", "k3"],
        ),
        (
            json!({"query": {"range": {"creation": {"gt": 2_000, "lte": 3_000}}}}),
            &["k3"],
        ),
        (
            json!({"query": {"range": {"creation": {"lt": "1970-01-01T00:00:02Z"}}}}),
            &["k1"],
        ),
        (
            json!({"query": {"range": {"expiration": {"lt": "now"}}}}),
            &["k1", "k3"],
        ),
        (
            json!({"query": {"exists": {"field": "expiration"}}}),
            &["k1", "k3"],
        ),
        (
            json!({"query": {"exists": {"field": "invalidation"}}}),
            &["k2"],
        ),
        (json!({"query": {"ids": {"values": ["k3", "k9"]}}}), &["k3"]),
        (
            json!({"query": {"term": {"metadata.env": "prod"}}}),
            &["k1"],
        ),
        (
            json!({"query": {"term": {"metadata.team.name": "blue"}}}),
            &["k1"],
        ),
        (json!({"query": {"term": {"metadata.tags": "b"}}}), &["k1"]),
        (
            json!({"query": {"exists": {"field": "metadata.env"}}}),
            &["k1", "k2"],
        ),
        (json!({"query": {"term": {"realm_name": "saml1"}}}), &["k3"]),
        (
            json!({"query": {"bool": {"must": [{"term": {"username": "ann"}}],
                                       "must_not": {"term": {"realm_name": "saml1"}}}}}),
            &["k1"],
        ),
        (
            json!({"query": {"bool": {"should": [{"term": {"name": "alpha"}}, {"term": {"name": "beta"}}]}}}),
            &["k1", "k2"],
        ),
        (
            json!({"query": {"bool": {"filter": {"term": {"username": "ann"}},
                                       "should": [{"term": {"name": "alpha"}}]}}}),
            &["k1", "k3"],
        ),
        (
            json!({"query": {"bool": {"filter": {"term": {"username": "ann"}},
                                       "should": [{"term": {"name": "alpha"}}],
                                       "minimum_should_match": 1}}}),
            &["k1"],
        ),
        (
            json!({"query": {"bool": {"should": [{"term": {"name": "alpha"}}, {"term": {"username": "ann"}}],
                                       "minimum_should_match": "100%"}}}),
            &["k1"],
        ),
        (json!({"sort": "creation"}), &["k1", "k2", "k3"]),
        (
            json!({"sort": [{"creation": {"order": "desc"}}]}),
            &["k3", "k2", "k1"],
        ),
        (
            json!({"sort": [{"expiration": "asc"}]}),
            &["k3", "k1", "k2"],
        ),
        (
            json!({"sort": [{"expiration": "desc"}]}),
            &["k1", "k3", "k2"],
        ),
        (
            json!({"sort": ["username", {"name": "desc"}]}),
            &["k1", "k3", "k2"],
        ),
        (
            json!({"sort": "creation", "search_after": [1_000]}),
            &["k2", "k3"],
        ),
        (json!({"sort": "creation", "from": 1, "size": 1}), &["k2"]),
        (json!({"size": 0}), &[]),
    ];
    for (body, expected) in table {
        let search = parse(body, &API_KEY_FIELDS, "query_api_key_request")
            .unwrap_or_else(|e| panic!("{body}: {e:?}"));
        assert_eq!(ids(&search), *expected, "{body}");
    }
}

#[test]
fn totals_count_every_match_and_sorted_hits_carry_their_sort_values() {
    let search = parse(
        &json!({"sort": [{"creation": "desc"}], "size": 1}),
        &API_KEY_FIELDS,
        "r",
    )
    .unwrap();
    let page = search.run(keys(), 0);
    assert_eq!(page.total, 3);
    assert_eq!(page.hits.len(), 1);
    assert_eq!(page.hits[0].1, Some(vec![json!(3_000)]));
    let unsorted = parse(&json!({}), &API_KEY_FIELDS, "r")
        .unwrap()
        .run(keys(), 0);
    assert!(unsorted.hits.iter().all(|(_, s)| s.is_none()));
}

#[test]
fn refusals_use_elasticsearchs_words() {
    let table: &[(Value, &str, &str)] = &[
        (
            json!({"query": {"term": {"api_key_hash": "x"}}}),
            "illegal_argument_exception",
            "Field [api_key_hash] is not allowed for querying or aggregation",
        ),
        (
            json!({"query": {"term": {"na*": "x"}}}),
            "illegal_argument_exception",
            "Field name pattern [na*] is not allowed for querying or aggregation",
        ),
        (
            json!({"query": {"match_phrase": {"name": "x"}}}),
            "illegal_argument_exception",
            "Query type [match_phrase] is not currently supported in this context",
        ),
        (
            json!({"query": {"no_such_query": {}}}),
            "parsing_exception",
            "unknown query [no_such_query]",
        ),
        (
            json!({"query": {"range": {"creation": {"gte": 1, "relation": "within"}}}}),
            "illegal_argument_exception",
            "range query with relation is not currently supported in this context",
        ),
        (
            json!({"query": {"terms": {"name": {"index": "i", "id": "1", "path": "p"}}}}),
            "illegal_argument_exception",
            "terms query with terms lookup is not currently supported in this context",
        ),
        (
            json!({"size": -1}),
            "illegal_argument_exception",
            "[size] parameter cannot be negative, found [-1]",
        ),
        (
            json!({"from": -2}),
            "illegal_argument_exception",
            "[from] parameter cannot be negative, found [-2]",
        ),
        (
            json!({"aggs": {}}),
            "x_content_parse_exception",
            "[query_api_key_request] unknown field [aggs]",
        ),
        (
            json!({"sort": "nope"}),
            "illegal_argument_exception",
            "Field [nope] is not allowed for querying or aggregation",
        ),
        (
            json!({"query": {"range": {"creation": {"gte": "yesterday"}}}}),
            "parse_exception",
            "failed to parse date field [yesterday] with format [strict_date_optional_time||epoch_millis]",
        ),
        (
            json!({"sort": ["creation"], "search_after": ["2024-13-01"]}),
            "parse_exception",
            "failed to parse date field [2024-13-01] with format [strict_date_optional_time||epoch_millis]",
        ),
        (
            json!({"query": {"range": {"expiration": {"lt": true}}}}),
            "parse_exception",
            "failed to parse date field [true] with format [strict_date_optional_time||epoch_millis]",
        ),
    ];
    for (body, kind, reason) in table {
        let e = parse(body, &API_KEY_FIELDS, "query_api_key_request").unwrap_err();
        assert_eq!((e.kind, e.reason.as_str()), (*kind, *reason), "{body}");
    }
    let too_big = parse(&json!({"from": 9_999, "size": 2}), &API_KEY_FIELDS, "r").unwrap_err();
    assert!(too_big.reason.starts_with("Result window is too large"));
    let e = parse(&json!({"sort": "email"}), &USER_FIELDS, "r").unwrap_err();
    assert_eq!(e.reason, "sorting is not supported for field [email]");
    assert!(parse(
        &json!({"sort": "username", "search_after": []}),
        &USER_FIELDS,
        "r"
    )
    .is_err());
}

#[test]
fn users_are_queried_by_their_fields() {
    let users = vec![
        Doc {
            id: "ann".into(),
            body: json!({"username": "ann", "roles": ["admin", "viewer"], "enabled": true,
                         "full_name": "Ann A", "email": "ann@example.com"}),
        },
        Doc {
            id: "bob".into(),
            body: json!({"username": "bob", "roles": ["viewer"], "enabled": false}),
        },
    ];
    let run = |body: Value| -> Vec<String> {
        parse(&body, &USER_FIELDS, "r")
            .unwrap()
            .run(users.clone(), 0)
            .hits
            .into_iter()
            .map(|(d, _)| d["username"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        run(json!({"query": {"term": {"roles": "viewer"}}})),
        ["ann", "bob"]
    );
    assert_eq!(
        run(json!({"query": {"wildcard": {"roles": "ad*"}}})),
        ["ann"]
    );
    assert_eq!(run(json!({"query": {"term": {"enabled": false}}})), ["bob"]);
    assert_eq!(
        run(json!({"query": {"exists": {"field": "email"}}})),
        ["ann"]
    );
    assert_eq!(run(json!({"sort": [{"username": "desc"}]})), ["bob", "ann"]);
    let e = parse(
        &json!({"query": {"term": {"metadata.x": 1}}}),
        &USER_FIELDS,
        "r",
    )
    .unwrap_err();
    assert_eq!(
        e.reason,
        "Field [metadata.x] is not allowed for querying or aggregation"
    );
}

#[test]
fn wildcards_and_dates() {
    assert!(wildcard("a*c", "abbbc"));
    assert!(wildcard("a?c", "abc"));
    assert!(!wildcard("a?c", "abbc"));
    assert!(wildcard("*", ""));
    assert!(!wildcard("a*d", "abc"));
    assert_eq!(parse_date("1700000000000"), Some(1_700_000_000_000));
    assert_eq!(parse_date("1970-01-02"), Some(86_400_000));
    assert_eq!(parse_date("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
    assert_eq!(
        parse_date("2023-11-14T22:13:20.5Z"),
        Some(1_700_000_000_500)
    );
    assert_eq!(
        parse_date("2023-11-15T00:13:20+02:00"),
        Some(1_700_000_000_000)
    );
    assert_eq!(parse_date("2023-13-01"), None);
    assert_eq!(parse_date("yesterday"), None);
}
