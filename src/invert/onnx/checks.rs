//! Reading a graph before candle-onnx runs it: operators without a gradient (named once each,
//! with the reason), nodes missing an input or output, and the declared input shape.

use candle_onnx::onnx::{self, tensor_shape_proto::dimension::Value as DimValue};

use super::SUPPORTED_OPS;

pub(super) fn attr_ints<'a>(node: &'a onnx::NodeProto, name: &str) -> Option<&'a [i64]> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.as_slice())
}

fn has_attr(node: &onnx::NodeProto, name: &str) -> bool {
    node.attribute.iter().any(|a| a.name == name)
}

/// Every operator of `graph` that cannot be differentiated here, in order of first appearance,
/// each named once (with the reason when the operator exists but its configuration has no
/// gradient).
pub fn unsupported_ops(graph: &onnx::GraphProto) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for node in &graph.node {
        let op = node.op_type.as_str();
        let problem = if !SUPPORTED_OPS.contains(&op) {
            Some(op.to_string())
        } else if op == "Softmax" && !has_attr(node, "axis") {
            Some("Softmax (no axis attribute: candle has no gradient for it)".into())
        } else if op == "MaxPool" || op == "AveragePool" {
            let kernel = attr_ints(node, "kernel_shape").unwrap_or_default();
            let strides = attr_ints(node, "strides");
            let pads = attr_ints(node, "pads").unwrap_or_default();
            if strides.is_some_and(|s| s != kernel) {
                Some(format!("{op} (stride != kernel: candle has no gradient for it)"))
            } else if pads.iter().any(|&p| p != 0) {
                Some(format!("{op} (padding is not supported)"))
            } else {
                None
            }
        } else {
            None
        };
        if let Some(p) = problem
            && !out.contains(&p)
        {
            out.push(p);
        }
    }
    out
}

/// The first node that lacks an output or an input its operator reads (candle-onnx indexes
/// them without checking and panics).
pub(super) fn arity_problem(graph: &onnx::GraphProto) -> Option<String> {
    graph.node.iter().find_map(|node| {
        let op = node.op_type.as_str();
        let need = match op {
            "Constant" => 0,
            "BatchNormalization" => 5,
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "MatMul" | "Gemm" | "Conv" | "Reshape" | "Gather" => 2,
            _ => 1,
        };
        if node.output.is_empty() {
            Some(format!("node '{}' ({op}) has no output", node.name))
        } else if node.input.len() < need {
            Some(format!(
                "node '{}' ({op}) has {} inputs, {op} needs at least {need}",
                node.name,
                node.input.len()
            ))
        } else {
            None
        }
    })
}

/// Element type and dimensions (None where symbolic) of a graph input.
pub(super) fn dims_of(v: &onnx::ValueInfoProto) -> Option<(i32, Vec<Option<usize>>)> {
    let onnx::type_proto::Value::TensorType(t) = v.r#type.as_ref()?.value.as_ref()? else {
        return None;
    };
    let dims = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(DimValue::DimValue(n)) if n > 0 => Some(n as usize),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some((t.elem_type, dims))
}
