use clap::Parser;
use fieldsync_server::config::{Cli, Command, MigrateStoreArgs, Settings};
use fieldsync_server::store::migrate;
use fieldsync_server::{startup::Application, telemetry};
use std::process::ExitCode;

fn main() -> ExitCode {
    let res = match Cli::parse().command {
        Command::Serve(args) => {
            telemetry::init();
            actix_web::rt::System::new().block_on(serve(&args))
        }
        Command::MigrateStore(args) => migrate_store(&args),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn migrate_store(args: &MigrateStoreArgs) -> anyhow::Result<()> {
    if !migrate::is_postgres_url(&args.to) {
        anyhow::bail!(
            "--to must be a postgres:// URL, got {:?}\nhint: create the database first, e.g. `createdb fieldsync`, then pass --to postgres://USER@HOST/fieldsync",
            args.to
        );
    }
    let from = migrate::Source::parse(&args.from);
    let report = migrate::migrate_store(&from, &args.to)?;
    print!("{}", migrate::render(&report));
    eprintln!(
        "copied and verified {} tables; start every instance with --database {}",
        report.len(),
        args.to
    );
    Ok(())
}

async fn serve(args: &fieldsync_server::config::ServeArgs) -> anyhow::Result<()> {
    let app = Application::build(Settings::from_serve(args)?)?;
    if let Some(pw) = &app.generated_admin_password {
        eprintln!("created user admin with password {pw} (shown once)");
    }
    eprintln!("fieldsync-server listening on http://{}", app.address());
    Ok(app.run_until_stopped().await?)
}
