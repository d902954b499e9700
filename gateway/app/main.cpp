// pggw [run] [flags] | pggw check-config --config FILE | pggw gen-cert --dir DIR | --version
#include <spdlog/spdlog.h>

#include "gateway/app/logging.hpp"

#include <iostream>

#include "gateway/app/config.hpp"
#include "gateway/app/gateway.hpp"
#include "gateway/app/tls_contexts.hpp"
#include "tls_backends/tls.hpp"

namespace {

int print_version() {
    std::cout << "pggw " << PGGW_VERSION << "\n";
    for (const auto& name : pggw::tls::compiled_backends()) {
        std::string err;
        auto* b = pggw::tls::load_backend(name, err);
        std::cout << "tls-library " << name << ": " << (b ? b->version() : "unavailable: " + err)
                  << "\n";
    }
    return 0;
}

int gen_cert(const pggw::ParsedCommand& cmd) {
    std::string err;
    pggw::tls::Backend* backend = nullptr;
    for (const auto& name : pggw::tls::compiled_backends()) {
        auto* b = pggw::tls::load_backend(name, err);
        if (b && b->has(pggw::tls::cap_generate_certificates)) {
            backend = b;
            break;
        }
    }
    if (!backend) {
        std::cerr << "pggw gen-cert: no TLS library in this build can make certificates\n";
        return 1;
    }
    pggw::tls::CertificateRequest req;
    req.dir = cmd.cert_dir;
    req.hostnames = cmd.hostnames;
    if (req.hostnames.empty()) req.hostnames = {"localhost", "127.0.0.1"};
    req.key_type = cmd.key_type;
    if (!backend->generate_certificates(req, err)) {
        std::cerr << "pggw gen-cert: " << err << "\n";
        return 1;
    }
    std::cout << "wrote " << req.dir << "/{ca.crt,ca.key,server.crt,server.key}\n";
    return 0;
}

int check_config(const pggw::ParsedCommand& cmd) {
    std::string err;
    if (!pggw::validate_tls_settings(cmd.config, err)) {
        std::cerr << cmd.config_file << ": " << err << "\n";
        return 1;
    }
    if (pggw::tls_needed(cmd.config)) {
        auto* b = pggw::tls::load_backend(cmd.config.tls_library, err);
        pggw::TlsContexts ctx;
        if (!b || !pggw::make_tls_contexts(cmd.config, b, ctx, err)) {
            std::cerr << cmd.config_file << ": " << err << "\n";
            return 1;
        }
    }
    std::cout << cmd.config_file << ": configuration OK\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    pggw::setup_logging(pggw::LogFormat::text);

    pggw::ParsedCommand cmd = pggw::parse_command_line(argc, argv);
    switch (cmd.kind) {
        case pggw::ParsedCommand::exit:
            return cmd.exit_code;
        case pggw::ParsedCommand::version:
            return print_version();
        case pggw::ParsedCommand::gen_cert:
            return gen_cert(cmd);
        case pggw::ParsedCommand::check_config:
            return check_config(cmd);
        case pggw::ParsedCommand::run:
            break;
    }
    pggw::setup_logging(cmd.config.log_format);
    spdlog::set_level(spdlog::level::from_str(cmd.config.log_level));
    return pggw::run_gateway(cmd.config);
}
