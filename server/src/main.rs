use clap::Parser;
use fieldsync_server::config::{Cli, Command, Settings};
use fieldsync_server::{startup::Application, telemetry};
use std::process::ExitCode;

#[actix_web::main]
async fn main() -> ExitCode {
    let Command::Serve(args) = Cli::parse().command;
    telemetry::init();
    match serve(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: &fieldsync_server::config::ServeArgs) -> anyhow::Result<()> {
    let app = Application::build(Settings::from_serve(args)?)?;
    if let Some(pw) = &app.generated_admin_password {
        eprintln!("created user admin with password {pw} (shown once)");
    }
    eprintln!("fieldsync-server listening on http://{}", app.address());
    Ok(app.run_until_stopped().await?)
}
