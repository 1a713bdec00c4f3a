use konstacks::prelude::*;

/// Adds the shop's resources to `stack`.
pub fn define(stack: &Stack) {
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let web_net = net.add("web", Subnet::new(vpc, "10.0.1.0/24").zone(0).public());
    let db_a = net.add("db-a", Subnet::new(vpc, "10.0.2.0/24").zone(0));
    let db_b = net.add("db-b", Subnet::new(vpc, "10.0.3.0/24").zone(1));
    let web_fw = net.add("web-fw", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
    let db_fw = net.add("db-fw", Firewall::new(vpc).allow(Ingress::tcp(5432).from(web_fw)));

    let db = stack.add(
        "db",
        Database::postgres("16", DbSize::Small, [db_a, db_b]).firewall(db_fw).backups(7),
    );
    let web = stack.add(
        "web",
        Vm::new(Image::UbuntuLts, VmSize::Small, web_net)
            .firewall(web_fw)
            .public_ip(true)
            .env("DATABASE_HOST", db.host())
            .env("DATABASE_PASSWORD", db.password()),
    );

    stack.export("url", web.public_ip());
    stack.export("db-host", db.host());
}

/// The shop stack at a stage.
pub fn shop(stage: Stage) -> Stack {
    let stack = Stack::new("shop", Placement::within(Jurisdiction::Eu), stage);
    define(&stack);
    stack
}
