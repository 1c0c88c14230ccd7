// The macro implements Pod and Zeroable itself.
#[grosr::record]
#[derive(Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct DerivesPod {
    x: u32,
}

fn main() {}
