//! Scale-out tests: several real `tessera` processes (the binary Cargo
//! built, `CARGO_BIN_EXE_tessera`) share one PostgreSQL database, and
//! clients spread their requests over them as a load balancer would.
//!
//! The PostgreSQL server is named by `TESSERA_TEST_POSTGRES_URL`
//! (`eval "$(bash .ci/postgres.sh start)"` runs a throw-away one). This
//! binary has its own harness (`tessera_testkit::trials`): when the server
//! cannot be reached the tests are reported as ignored, saying why, except
//! under CI, where they fail. Every test creates a database of its own
//! (`tessera_cluster_<random>`) and drops it afterwards, so the tests run
//! in parallel. The nodes log at `warn` (plus the line saying where they
//! listen) into their temporary folders, and a failing test prints the end
//! of each node's log; set `CLUSTER_TEST_NODE_LOG` (a `TESSERA_LOG`
//! filter) to see more.
//!
//! - `multi_node`: concurrent refreshes of one token spread over three
//!   nodes agree, and what one node answered is at once true on the others.
//! - `crash`: a node killed with SIGKILL in the middle of a stream of
//!   refreshes loses nothing and never lets a refresh token rotate twice.
//! - `restart`: a rolling restart (SIGTERM, then a replacement node) under
//!   a stream of refreshes fails no request.
//! - `outage`: a node whose database goes away answers 503 quickly and
//!   recovers by itself, and logs each failed request once.
//! - `derived`: a chain of tokens minted across two nodes from an API key
//!   dies on both nodes the moment the key's invalidation answers.
//! - `failover`: the primary (with a synchronous standby) is killed under
//!   load and the standby promoted: nothing acknowledged is lost, no
//!   family forks, and the nodes follow the new primary by themselves.
//! - `startup`: a node started before its database waits for it (up to
//!   `store_wait`), and a database that turns read-only makes it unready.
//! - `cache`: credentials hot in every node's read cache are refused on
//!   every node once the call that revoked them answers, and every such
//!   call waits `cluster_cache_ttl` after its commit.
//! - `cache_epoch`: credentials that every node serves past
//!   `cluster_cache_ttl` (no revoking write since their read) are refused
//!   on every node once the call that revoked them answers.
//! - `saml`: one SAML Response presented to two nodes at once logs in
//!   exactly once.
//! - `user_races`: invalidation by user racing refreshes of the user's
//!   families leaves none of them alive, and the races cost fewer than one
//!   rolled-back transaction per hundred refreshes.
//! - `service_tokens`: a service token deleted through one node is refused
//!   on every node at once.
//! - `storm`: 256 concurrent refreshes of one token on one node get one
//!   pair, and the database holds one successor.

mod support;

mod cache;
mod cache_epoch;
mod crash;
mod derived;
mod failover;
mod multi_node;
mod outage;
mod restart;
mod saml;
mod service_tokens;
mod startup;
mod storm;
mod user_races;

fn main() {
    tessera_testkit::trials::run(tessera_testkit::postgres_trials![
        cache::hot_credentials_die_on_every_node_once_the_revoking_call_answers,
        cache::every_revoking_call_waits_the_grace_and_adding_calls_do_not,
        cache_epoch::entries_kept_past_the_ttl_die_on_every_node_once_the_revoking_call_answers,
        crash::killing_a_node_mid_stream_loses_nothing_and_never_rotates_twice,
        derived::an_invalidated_key_kills_its_chain_on_every_node,
        failover::a_killed_primary_fails_over_to_its_synchronous_standby_and_loses_nothing,
        multi_node::refresh_races_across_nodes_agree_and_hold_everywhere_at_once,
        outage::database_outage_gives_quick_503s_and_the_node_recovers_by_itself,
        outage::each_request_an_outage_fails_is_logged_once_with_a_detail_its_answer_lacks,
        restart::rolling_restart_under_load_fails_no_request,
        saml::a_response_replayed_on_two_nodes_at_once_logs_in_once,
        service_tokens::a_deleted_service_token_is_refused_on_every_node_at_once,
        startup::a_node_started_before_its_database_waits_for_it,
        startup::a_node_gives_up_after_store_wait_and_names_the_database,
        startup::a_node_refuses_a_database_without_tls_at_once,
        startup::a_read_only_database_makes_the_node_unready,
        storm::a_storm_on_one_node_writes_one_successor_and_answers_one_pair,
        user_races::invalidation_by_user_races_refreshes_of_its_families_on_three_nodes,
    ]);
}
