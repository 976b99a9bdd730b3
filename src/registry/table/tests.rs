//! The registry table's unit tests: expiry, limits, fairness between sources.

use super::*;

const TIMEOUT: Duration = Duration::from_secs(240);

fn table() -> Table {
    Table::new(TIMEOUT, Limits::default())
}

fn at(start: Instant, secs: u64) -> Instant {
    start + Duration::from_secs(secs)
}

fn ep(host: &str, port: u16) -> Endpoint {
    (host.to_owned(), port)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|name| (*name).to_owned()).collect()
}

fn added(list: &[&str]) -> Result<Registration, Refused> {
    Ok(Registration {
        added: names(list),
        pruned: vec![],
    })
}

#[test]
fn register_upper_cases_and_reports_only_new_names() {
    let t0 = Instant::now();
    let mut table = table();
    let a = ep("10.0.0.1", 18812);
    assert_eq!(
        table.register(&a, &names(&["slave", "Classic", "SLAVE"]), t0),
        added(&["SLAVE", "CLASSIC"])
    );
    assert_eq!(table.counts(), (2, 2));
    assert_eq!(
        table.register(&a, &names(&["slave", "extra"]), at(t0, 1)),
        added(&["EXTRA"])
    );
    assert_eq!(
        table.register(&a, &names(&["SLAVE"]), at(t0, 2)),
        added(&[])
    );
    assert_eq!(table.query("Slave", at(t0, 2)).0, vec![a]);
}

#[test]
fn query_sorts_least_recently_registered_first_and_refresh_moves_to_the_back() {
    let t0 = Instant::now();
    let mut table = table();
    let (a, b) = (ep("10.0.0.1", 1), ep("10.0.0.2", 2));
    table.register(&a, &names(&["S"]), t0).expect("room");
    table.register(&b, &names(&["S"]), at(t0, 1)).expect("room");
    assert_eq!(table.query("s", at(t0, 2)).0, vec![a.clone(), b.clone()]);
    table.register(&a, &names(&["S"]), at(t0, 3)).expect("room");
    assert_eq!(table.query("s", at(t0, 4)).0, vec![b, a]);
    assert_eq!(table.query("nothing", at(t0, 4)), (vec![], vec![]));
}

#[test]
fn unregister_removes_only_that_host_and_port() {
    let t0 = Instant::now();
    let mut table = table();
    let a = ep("10.0.0.1", 1);
    table.register(&a, &names(&["X", "Y"]), t0).expect("room");
    table
        .register(&ep("10.0.0.1", 2), &names(&["X"]), t0)
        .expect("room");
    table
        .register(&ep("10.0.0.2", 1), &names(&["Y"]), t0)
        .expect("room");
    assert_eq!(table.unregister(&a, t0), names(&["X", "Y"]));
    assert_eq!(table.unregister(&a, t0), Vec::<String>::new());
    assert_eq!(table.query("X", t0).0, vec![ep("10.0.0.1", 2)]);
    assert_eq!(table.query("Y", t0).0, vec![ep("10.0.0.2", 1)]);
    assert_eq!(table.counts(), (2, 2));
    table.unregister(&ep("10.0.0.1", 2), t0);
    assert_eq!(table.names(None), names(&["Y"]));
}

#[test]
fn entries_live_for_the_timeout_then_query_and_prune_drop_them() {
    let t0 = Instant::now();
    let mut table = table();
    let (a, b) = (ep("10.0.0.1", 1), ep("10.0.0.2", 2));
    table.register(&a, &names(&["S", "T"]), t0).expect("room");
    table
        .register(&b, &names(&["S"]), at(t0, 100))
        .expect("room");
    // exactly the timeout old is still alive, as in rpyc
    assert_eq!(table.query("S", at(t0, 240)).0, vec![a.clone(), b.clone()]);
    let (live, removed) = table.query("S", at(t0, 241));
    assert_eq!(live, vec![b.clone()]);
    assert_eq!(
        removed,
        vec![Removed {
            name: "S".into(),
            endpoint: a.clone()
        }]
    );
    // T's entry of a is as stale, but only a prune (or a query of T) sees it
    assert_eq!(table.counts(), (2, 2));
    assert_eq!(
        table.prune(at(t0, 341)),
        vec![
            Removed {
                name: "S".into(),
                endpoint: b
            },
            Removed {
                name: "T".into(),
                endpoint: a
            }
        ]
    );
    assert_eq!(table.counts(), (0, 0));
    assert!(table.hosts.values().all(|host| host.held == 0));
}

#[test]
fn list_keeps_first_appearance_order_and_filters_by_host() {
    let t0 = Instant::now();
    let mut table = table();
    table
        .register(&ep("10.0.0.1", 1), &names(&["B", "A"]), t0)
        .expect("room");
    table
        .register(&ep("10.0.0.2", 1), &names(&["C", "A"]), t0)
        .expect("room");
    assert_eq!(table.names(None), names(&["B", "A", "C"]));
    assert_eq!(table.names(Some("10.0.0.2")), names(&["A", "C"]));
    assert_eq!(table.names(Some("10.9.9.9")), Vec::<String>::new());
}

#[test]
fn per_host_cap_refuses_whole_registrations_but_not_keepalives() {
    let t0 = Instant::now();
    let mut table = Table::new(
        TIMEOUT,
        Limits {
            per_host: 3,
            total: 100,
            reserved: 0,
            reserved_per_host: 0,
        },
    );
    let a = ep("10.0.0.1", 1);
    table.register(&a, &names(&["A", "B"]), t0).expect("room");
    assert_eq!(
        table.register(&ep("10.0.0.1", 2), &names(&["C", "D"]), t0),
        Err(Refused::HostFull {
            host: "10.0.0.1".into(),
            held: 2,
            limit: 3
        })
    );
    assert_eq!(table.counts(), (2, 2));
    // refreshing what is held needs no room
    assert_eq!(
        table.register(&a, &names(&["A", "B"]), at(t0, 1)),
        added(&[])
    );
    // another host is not affected
    table
        .register(&ep("10.0.0.2", 1), &names(&["C", "D", "E"]), t0)
        .expect("room");
    // once the old entries are stale, they no longer count
    let registered = table
        .register(&ep("10.0.0.1", 2), &names(&["C", "D", "E"]), at(t0, 300))
        .expect("room once pruned");
    assert_eq!(registered.added, names(&["C", "D", "E"]));
    assert_eq!(registered.pruned.len(), 2 + 3);
}

#[test]
fn total_cap_bounds_the_table_across_hosts() {
    let t0 = Instant::now();
    let mut table = Table::new(
        TIMEOUT,
        Limits {
            per_host: 10,
            total: 4,
            reserved: 0,
            reserved_per_host: 0,
        },
    );
    for host in 0..4 {
        table
            .register(&ep(&format!("10.0.0.{host}"), 1), &names(&["S"]), t0)
            .expect("room");
    }
    assert_eq!(
        table.register(&ep("10.0.0.9", 1), &names(&["S"]), t0),
        Err(Refused::TableFull { held: 4, limit: 4 })
    );
    table.unregister(&ep("10.0.0.0", 1), t0);
    assert!(table
        .register(&ep("10.0.0.9", 1), &names(&["S"]), t0)
        .is_ok());
}

#[test]
fn the_reserve_is_kept_for_hosts_already_known() {
    let t0 = Instant::now();
    let mut table = Table::new(
        TIMEOUT,
        Limits {
            per_host: 5,
            total: 20,
            reserved: 8,
            reserved_per_host: 3,
        },
    );
    let real = ep("10.0.1.1", 18812);
    table
        .register(&real, &names(&["REAL", "R2"]), t0)
        .expect("room");
    // a flood of new hosts stops where the reserve begins
    let flood = names(&["A", "B", "C", "D", "E"]);
    let admitted = (0..10)
        .filter(|host| {
            table
                .register(&ep(&format!("10.0.0.{host}"), 1), &flood, t0)
                .is_ok()
        })
        .count();
    assert_eq!((admitted, table.counts().1), (2, 12));
    assert_eq!(
        table.register(&ep("10.0.2.2", 1), &names(&["NEW"]), t0),
        Err(Refused::Reserved {
            host: "10.0.2.2".into(),
            host_held: 0,
            held: 12,
            limit: 20,
            per_host: 3
        })
    );
    // a known host may add, up to its share of the reserve
    assert_eq!(
        table.register(&real, &names(&["REAL", "MORE"]), t0),
        added(&["MORE"])
    );
    assert!(matches!(
        table.register(&ep("10.0.1.1", 2), &names(&["X"]), t0),
        Err(Refused::Reserved { host_held: 3, .. })
    ));
    // and come back after unregistering, as a restarted server does
    assert_eq!(table.unregister(&real, at(t0, 1)).len(), 3);
    assert_eq!(
        table.register(&real, &names(&["REAL", "R2", "MORE"]), at(t0, 2)),
        added(&["REAL", "R2", "MORE"])
    );
    // a host gone for longer than the timeout is forgotten
    table.unregister(&real, at(t0, 3));
    table.prune(at(t0, 300));
    assert_eq!(table.counts(), (0, 0));
    assert!(table.hosts.is_empty());
    assert_eq!(table.departed, 0);
}

#[test]
fn departed_hosts_are_remembered_only_so_many() {
    let t0 = Instant::now();
    let limits = Limits {
        per_host: 5,
        total: 100,
        reserved: 4,
        reserved_per_host: 3,
    };
    let mut table = Table::new(TIMEOUT, limits);
    for host in 0..50 {
        let endpoint = ep(&format!("10.0.0.{host}"), 1);
        table.register(&endpoint, &names(&["S"]), t0).expect("room");
        table.unregister(&endpoint, t0);
        assert!(table.departed <= limits.reserved);
        assert!(table.hosts.len() <= limits.reserved + 1);
    }
}

#[test]
fn a_refused_registration_prunes_at_most_once_a_second() {
    let t0 = Instant::now();
    let limits = Limits {
        per_host: 5,
        total: 1,
        reserved: 0,
        reserved_per_host: 0,
    };
    let mut table = Table::new(TIMEOUT, limits);
    table
        .register(&ep("10.0.0.1", 1), &names(&["A"]), t0)
        .expect("room");
    let full = Err(Refused::TableFull { held: 1, limit: 1 });
    let try_at = |table: &mut Table, host: &str, millis: u64| {
        table.register(
            &ep(host, 1),
            &names(&["B"]),
            t0 + Duration::from_millis(millis),
        )
    };
    // A is live: a prune finds nothing
    assert_eq!(try_at(&mut table, "10.0.0.2", 240_000), full);
    // A is stale now, but the table was pruned half a second ago
    assert_eq!(try_at(&mut table, "10.0.0.3", 240_500), full);
    // a second on, it is pruned again
    let registered = try_at(&mut table, "10.0.0.4", 241_000).expect("room once pruned");
    assert_eq!(registered.pruned.len(), 1);
}
