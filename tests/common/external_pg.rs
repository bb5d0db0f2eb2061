//! A Postgres server masctl did not make: a plain `docker run` of masctl's Postgres
//! image on a network the test made, with the roles and databases its administrator
//! would create (UTF8, C locale, no superuser for the stack), and the `masctl.toml`
//! section that points a stack at it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use super::{Docker, Root, docker, psql, wait_for};

pub struct ExternalPostgres {
    /// The server's container (also its host name on `network`).
    pub container: String,
    pub network: String,
    pub synapse_password: String,
    pub mas_password: String,
}

/// A password an administrator might pick, with the characters a pgpass file must escape.
pub fn password(tag: &str) -> String {
    let mut b = [0u8; 12];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b)).unwrap();
    format!("{tag}:p\\w-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

/// The server on a new network of `d`'s, ready, with `syn_owner`/`synapse_db` and
/// `auth_owner`/`auth_db`.
pub fn start(d: &mut Docker) -> ExternalPostgres {
    let network = d.network();
    let image = Root::new().load("postgres");
    let container = d.run("db", &["--network", &network, &image]);
    wait_for("the external Postgres to accept connections", Duration::from_secs(60), || {
        docker(&["exec", &container, "pg_isready", "-q", "-h", "/run/postgresql", "-U", "postgres"])
            .status
            .success()
            .then_some(())
    });
    let (synapse_password, mas_password) = (password("syn"), password("mas"));
    for (role, database, pw) in
        [("syn_owner", "synapse_db", &synapse_password), ("auth_owner", "auth_db", &mas_password)]
    {
        psql(&container, "postgres", &format!("CREATE ROLE {role} LOGIN PASSWORD '{pw}'"));
        psql(
            &container,
            "postgres",
            &format!(
                "CREATE DATABASE {database} OWNER {role} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            ),
        );
    }
    ExternalPostgres { container, network, synapse_password, mas_password }
}

impl ExternalPostgres {
    /// The `[postgres.external]` section, its password files written (0600) into `dir`.
    pub fn config(&self, dir: &Path) -> String {
        std::fs::create_dir_all(dir).unwrap();
        for (name, pw) in [("synapse", &self.synapse_password), ("mas", &self.mas_password)] {
            let f = dir.join(name);
            std::fs::write(&f, format!("{pw}\n")).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        format!(
            "[postgres.external]\nhost = \"{}\"\nnetwork = \"{}\"\n\
synapse = {{ database = \"synapse_db\", user = \"syn_owner\", password_file = \"{2}/synapse\" }}\n\
mas = {{ database = \"auth_db\", user = \"auth_owner\", password_file = \"{2}/mas\" }}\n",
            self.container,
            self.network,
            dir.display()
        )
    }
}
